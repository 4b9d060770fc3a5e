"""Opening an Ascend backend (``acl`` or ``mindx``) for an ``.om`` model; ``auto`` picks the first whose SDK
module imports (pyACL first: it runs the .om directly, without a JPEG round trip)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import AscendSlimError
from ..runtime.base import Backend

ASCEND_KINDS = ("acl", "mindx")
SDK_MODULES = {"acl": "acl", "mindx": "StreamManagerApi"}


def sdk_available(kind: str) -> bool:
    """Whether the Python module of the backend's SDK can be imported."""
    return importlib.util.find_spec(SDK_MODULES[kind]) is not None


def open_ascend_backend(weights: str | Path, kind: str = "auto", device_id: int = 0) -> Backend:
    """Open ``weights`` (an ``.om``) with the ``acl`` or ``mindx`` backend (``auto``: whichever SDK is there)."""
    weights = Path(weights)
    if kind not in ("auto", *ASCEND_KINDS):
        raise AscendSlimError(f"{weights.name} is an Ascend model: run it with --backend acl or mindx, not {kind}")
    if weights.suffix.lower() != ".om":
        raise AscendSlimError(
            f"backend {kind} runs Ascend .om models, not {weights.name}: convert it with `ascend-slim deploy` "
            "and `ascend-slim convert` (or bash convert.sh) first"
        )
    if not weights.is_file():
        raise AscendSlimError(f"model not found: {weights}")
    if kind == "auto":
        kind = next((k for k in ASCEND_KINDS if sdk_available(k)), "acl")
    if kind == "acl":
        from .acl_backend import AclBackend

        return AclBackend(weights, device_id=device_id)
    from .mindx_backend import MindXBackend

    return MindXBackend(weights, device_id=device_id)
