"""The one exception type that user-facing code raises for bad input."""


class AscendSlimError(Exception):
    """A problem with the user's input (file, model, flag) that the CLI reports as one line.

    The message names the thing at fault and what to do about it.
    """
