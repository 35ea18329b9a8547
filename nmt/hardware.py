"""The machine: what its CPU does fast (advice on precision), oneDNN's kernel cache, device names, autocast."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from nmt.errors import NmtError


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The instruction-set flags the (Linux) kernel reports for the first CPU, or None where it reports none."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def cpu_lacks_bf16_matmul(flags: set[str] | None = None) -> bool:
    """True on an x86 CPU with neither avx512_bf16 nor AMX, where bfloat16 matrix multiplies are emulated
    (about half the speed of float32; docs/benchmarks.md). False where unknown (not Linux, not x86)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False  # ARM's bf16 extensions are not what these checks look for
    flags = cpu_flags() if flags is None else flags
    return flags is not None and not flags & {"avx512_bf16", "amx_bf16", "amx_tile"}


# oneDNN (bfloat16 matrix multiplies on CPU) keeps a compiled kernel for every matrix shape it meets, up to
# 1,024 by default, and token-budget batches come in many shapes: 64 bounds the memory at the same speed
# (docs/benchmarks.md).
ONEDNN_CACHE_CAPACITY = 64


def bound_onednn_kernel_cache() -> None:
    """Cap oneDNN's kernel cache at :data:`ONEDNN_CACHE_CAPACITY` unless the user set
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``; oneDNN reads it when it first builds a kernel."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_CACHE_CAPACITY))


#: ``--precision`` of ``nmt translate`` and the benchmark's decoding: the autocast dtype (None: float32).
PRECISIONS = {"32": None, "fp32": None, "bf16": torch.bfloat16, "16": torch.float16, "fp16": torch.float16}


def autocast(device_type: str, precision: str) -> torch.autocast:
    """The autocast context of ``--precision`` (``32``: none)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def parse_device(name: str | None, option: str = "--device") -> torch.device:
    """``torch.device(name)`` (None: ``cuda`` if there is a GPU, else ``cpu``), refusing with a clear message a
    name that is no device or a GPU this machine lacks."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NmtError(f"{option} '{name}' is not a device name; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise NmtError(f"{option} {name}: no such CUDA device here ({torch.cuda.device_count()} found). Use cpu.")
    return device
