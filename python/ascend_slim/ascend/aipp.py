"""Static AIPP configuration (ATC ``--insert_op_conf``): writer, parser, numpy emulation and NV12 helpers.

The configuration written for YOLOv5 is the documented "JPEG" YUV420SP_U8 -> RGB preset: DVPP decodes a JPEG
into full-range YCbCr 4:2:0 (NV12) and AIPP turns it into RGB scaled by ``var_reci`` (1/255), so the model
sees the same RGB/255 tensor that the host preprocess produces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import AscendSlimError

# Rows of the JPEG (full-range) YUV -> RGB preset in 8.8 fixed point and its input bias.
JPEG_YUV2RGB_MATRIX: tuple[int, ...] = (256, 0, 359, 256, -88, -183, 256, 454, 0)
JPEG_YUV2RGB_BIAS: tuple[int, int, int] = (0, 128, 128)
VAR_RECI_1_255 = 1.0 / 255.0


@dataclass(frozen=True)
class AippConfig:
    """One static ``aipp_op`` block for a YUV420SP_U8 input of ``width`` x ``height`` pixels.

    AIPP computes ``c = (matrix @ (yuv - input_bias)) >> 8`` and then ``(c - mean - min) * var_reci``
    per output channel.
    """

    width: int
    height: int
    matrix: tuple[int, ...] = JPEG_YUV2RGB_MATRIX
    input_bias: tuple[int, int, int] = JPEG_YUV2RGB_BIAS
    var_reci: tuple[float, float, float] = (VAR_RECI_1_255,) * 3
    mean: tuple[int, int, int] = (0, 0, 0)
    min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    input_format: str = "YUV420SP_U8"
    csc_switch: bool = True
    rbuv_swap_switch: bool = False

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise AscendSlimError(
                f"AIPP source size {self.width}x{self.height} must be positive and even for YUV420SP input"
            )
        if len(self.matrix) != 9:
            raise AscendSlimError(f"AIPP CSC matrix needs 9 values, got {len(self.matrix)}")


def _bool(value: bool) -> str:
    return "true" if value else "false"


def render_aipp(cfg: AippConfig) -> str:
    """The text of an AIPP config file with one static ``aipp_op`` block."""
    lines = [
        "aipp_mode : static",
        "related_input_rank : 0",
        f"input_format : {cfg.input_format}",
        f"src_image_size_w : {cfg.width}",
        f"src_image_size_h : {cfg.height}",
        "crop : false",
        f"csc_switch : {_bool(cfg.csc_switch)}",
        f"rbuv_swap_switch : {_bool(cfg.rbuv_swap_switch)}",
    ]
    lines += [f"matrix_r{i // 3}c{i % 3} : {v}" for i, v in enumerate(cfg.matrix)]
    lines += [f"input_bias_{i} : {v}" for i, v in enumerate(cfg.input_bias)]
    lines += [f"mean_chn_{i} : {v}" for i, v in enumerate(cfg.mean) if v]
    lines += [f"min_chn_{i} : {v!r}" for i, v in enumerate(cfg.min) if v]
    lines += [f"var_reci_chn_{i} : {v:.15g}" for i, v in enumerate(cfg.var_reci)]
    return "aipp_op {\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


_BLOCK = re.compile(r"aipp_op\s*\{(.*?)\}", re.S)


def parse_aipp_blocks(text: str) -> list[dict[str, str]]:
    """All ``aipp_op { key : value ... }`` blocks of an AIPP config file (``#`` starts a comment)."""
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    blocks = []
    for body in _BLOCK.findall(text):
        entries: dict[str, str] = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep or not key.strip() or not value.strip():
                raise AscendSlimError(f"malformed AIPP line {line.strip()!r}: expected 'key : value'")
            entries[key.strip()] = value.strip()
        blocks.append(entries)
    if not blocks:
        raise AscendSlimError("AIPP config has no 'aipp_op { ... }' block")
    return blocks


def parse_aipp(text: str) -> AippConfig:
    """The static YUV420SP config of a single-input AIPP file (what :func:`render_aipp` writes)."""
    blocks = parse_aipp_blocks(text)
    if len(blocks) != 1:
        raise AscendSlimError(f"AIPP config has {len(blocks)} aipp_op blocks; a YOLOv5 model has one input")
    kv = blocks[0]
    if kv.get("aipp_mode", "static") != "static":
        raise AscendSlimError(f"AIPP mode {kv['aipp_mode']!r} is not supported here: use a static AIPP config")
    if kv.get("crop", "false") == "true" or kv.get("padding", "false") == "true":
        raise AscendSlimError("AIPP crop/padding is not supported here: the host letterboxes to the model size")

    def ints(prefix: str, n: int, default: int) -> tuple[int, ...]:
        return tuple(int(kv.get(f"{prefix}{i}", default)) for i in range(n))

    try:
        return AippConfig(
            width=int(kv["src_image_size_w"]),
            height=int(kv["src_image_size_h"]),
            matrix=tuple(int(kv.get(f"matrix_r{i // 3}c{i % 3}", 0)) for i in range(9)),
            input_bias=ints("input_bias_", 3, 0),
            var_reci=tuple(float(kv.get(f"var_reci_chn_{i}", 1.0)) for i in range(3)),
            mean=ints("mean_chn_", 3, 0),
            min=tuple(float(kv.get(f"min_chn_{i}", 0.0)) for i in range(3)),
            input_format=kv.get("input_format", ""),
            csc_switch=kv.get("csc_switch", "false") == "true",
            rbuv_swap_switch=kv.get("rbuv_swap_switch", "false") == "true",
        )
    except (KeyError, ValueError) as exc:
        raise AscendSlimError(f"AIPP config value missing or not a number: {exc}") from None


def yolov5_aipp(width: int, height: int) -> AippConfig:
    """The AIPP config for an ascend-slim YOLOv5 model: NV12 of model size -> RGB/255."""
    return AippConfig(width=width, height=height)


def rgb_to_nv12(rgb: np.ndarray) -> np.ndarray:
    """Full-range (JPEG) YCbCr 4:2:0 of an RGB uint8 image, as NV12 bytes of shape ``(h*3/2, w)``.

    This is what DVPP's JPEG decoder hands to AIPP (up to JPEG compression loss): Y at full resolution,
    then interleaved Cb,Cr averaged over 2x2 blocks (rounded).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise AscendSlimError(f"NV12 conversion needs an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise AscendSlimError(f"NV12 needs an even image size, got {w}x{h}")
    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    chroma = ycrcb[:, :, 1:].astype(np.uint16).reshape(h // 2, 2, w // 2, 2, 2).sum(axis=(1, 3))
    chroma = ((chroma + 2) >> 2).astype(np.uint8)  # (h/2, w/2, [Cr, Cb])
    nv12 = np.empty((h * 3 // 2, w), np.uint8)
    nv12[:h] = ycrcb[:, :, 0]
    nv12[h:] = chroma[:, :, ::-1].reshape(h // 2, w)  # NV12 interleaves U (Cb) first
    return nv12


def apply_aipp(nv12: np.ndarray, cfg: AippConfig) -> np.ndarray:
    """Emulate static AIPP on an NV12 image: returns the ``HxWx3`` float32 model input (channel order of the
    matrix rows; RGB for the JPEG preset).

    Chroma is upsampled by repeating each 2x2 sample; the fixed-point product is floored (``>> 8``) and,
    as an 8-bit pixel, saturated to 0..255 [inference: the documents give the formula, not the saturation]
    before ``(c - mean - min) * var_reci``.
    """
    if cfg.input_format != "YUV420SP_U8" or not cfg.csc_switch:
        raise AscendSlimError(
            f"AIPP emulation covers YUV420SP_U8 with csc_switch true, not {cfg.input_format} "
            f"(csc_switch {_bool(cfg.csc_switch)})"
        )
    h, w = cfg.height, cfg.width
    if nv12.dtype != np.uint8 or nv12.shape != (h * 3 // 2, w):
        raise AscendSlimError(f"NV12 input must be uint8 {(h * 3 // 2, w)} for {w}x{h}, got {nv12.shape}")
    uv = nv12[h:].reshape(h // 2, w // 2, 2)
    if cfg.rbuv_swap_switch:
        uv = uv[:, :, ::-1]
    uv = uv.repeat(2, axis=0).repeat(2, axis=1)
    yuv = np.concatenate([nv12[:h, :, None], uv], axis=2).astype(np.int32) - np.asarray(cfg.input_bias)
    csc = np.right_shift(yuv @ np.asarray(cfg.matrix, np.int32).reshape(3, 3).T, 8)
    csc = np.clip(csc, 0, 255).astype(np.float32)
    offset = np.asarray(cfg.mean, np.float32) + np.asarray(cfg.min, np.float32)
    return (csc - offset) * np.asarray(cfg.var_reci, np.float32)
