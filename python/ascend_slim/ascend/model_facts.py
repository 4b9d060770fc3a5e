"""Where an Ascend model's facts (classes, anchors, strides, input size) come from.

An ``.om`` carries none of them, so ``deploy`` writes a sidecar ``<name>.json`` beside ``<name>.onnx`` (and
the ``<name>.om`` that ATC makes next to it): the ``ModelMeta.to_props()`` mapping plus a ``deploy`` entry.
For ``X.om`` the facts are read from ``X.json``, else from the ascend-slim ``X.onnx`` beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import AscendSlimError
from ..meta import META_KEY_PREFIX, ModelMeta

DEPLOY_KEY = META_KEY_PREFIX + "deploy"


def sidecar_text(meta: ModelMeta, deploy_info: dict[str, object]) -> str:
    """JSON text of the sidecar: ``meta.to_props()`` plus ``deploy_info`` under ``ascend_slim.deploy``."""
    props = {**meta.to_props(), DEPLOY_KEY: json.dumps(deploy_info, sort_keys=True)}
    return json.dumps(props, indent=2, sort_keys=True) + "\n"


def head_shapes(meta: ModelMeta) -> list[tuple[int, int, int, int, int]]:
    """The raw head shapes ``(1, na, h/s, w/s, 5+nc)`` in ``meta.strides`` order."""
    h, w = meta.img_size
    return [(1, meta.na, int(h // s), int(w // s), meta.nc + 5) for s in meta.strides]


def onnx_meta(path: str | Path) -> ModelMeta:
    """The ModelMeta stored in an ascend-slim ONNX file's ``metadata_props``."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a corrupt file
        raise AscendSlimError(f"cannot read ONNX model {path}: {exc}") from None
    return ModelMeta.from_props({p.key: p.value for p in model.metadata_props}, source=str(path))


def om_meta(om: str | Path) -> ModelMeta:
    """Facts for an ``.om``: ``<stem>.json`` beside it, else ``<stem>.onnx`` beside it."""
    om = Path(om)
    sidecar, onnx_file = om.with_suffix(".json"), om.with_suffix(".onnx")
    if sidecar.is_file():
        try:
            props = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AscendSlimError(f"cannot read model facts {sidecar}: {exc}") from None
        if not isinstance(props, dict):
            raise AscendSlimError(f"model facts {sidecar} are not a JSON object; rewrite them with ascend-slim deploy")
        return ModelMeta.from_props(props, source=str(sidecar))
    if onnx_file.is_file():
        return onnx_meta(onnx_file)
    raise AscendSlimError(
        f"no model facts for {om}: put the {sidecar.name} written by `ascend-slim deploy` (or the {onnx_file.name} "
        "it was converted from) beside it"
    )
