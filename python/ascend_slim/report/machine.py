"""The machine a measurement ran on: CPU model, core count and the SIMD features INT8/fp32 speed depends on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# Flags (as /proc/cpuinfo spells them) that change what onnxruntime's CPU kernels can use.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
                  "amx_bf16")


def cpu_info() -> dict:
    """``{"model", "cores", "flags"}``: ``flags`` lists those of :data:`RELEVANT_FLAGS` the CPU reports."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "cores": os.cpu_count() or 1, "flags": [f for f in RELEVANT_FLAGS if f in flags]}


def describe_cpu(info: dict | None = None) -> str:
    """One line such as ``Intel Xeon (2 cores; avx2 avx512f avx512_vnni)``."""
    info = info or cpu_info()
    return f"{info['model']} ({info['cores']} cores; {' '.join(info['flags']) or 'no AVX2'})"
