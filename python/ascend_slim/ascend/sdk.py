"""Importing the Ascend SDK Python modules with one clear line when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import AscendSlimError

TOOLKIT_ENV = "/usr/local/Ascend/ascend-toolkit/set_env.sh"
MINDX_ENV = "${MX_SDK_HOME}/set_env.sh"

_HOW = {
    "acl": f"install the CANN toolkit (pyACL, nnrt or ascend-toolkit) and run `source {TOOLKIT_ENV}`",
    "mindx": f"install the MindX SDK (mxVision) and run `source {TOOLKIT_ENV}` and `source {MINDX_ENV}`",
}


def import_sdk(kind: str, *modules: str) -> list[ModuleType]:
    """Import ``modules`` of the ``acl`` or ``mindx`` SDK, or raise AscendSlimError saying how to get them."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as exc:
        missing = exc.name or modules[0]
        raise AscendSlimError(f"backend {kind} needs the Python module {missing!r}: {_HOW[kind]}") from None
