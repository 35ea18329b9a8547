"""The machine: what its CPU does fast (advice on precision), oneDNN's kernel cache, device names, autocast."""

from __future__ import annotations

import os
import platform

import torch

from nmt.errors import NmtError


def cpu_lacks_bf16_matmul() -> bool:
    """True on an x86 CPU with neither avx512_bf16 nor AMX, where bfloat16 matrix multiplies are
    emulated: about half the speed of float32 (72 against ~140 GFLOP/s for the benchmark model's
    shapes, measured by limiting oneDNN to ``ONEDNN_MAX_CPU_ISA=AVX512_CORE``). False where unknown."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False  # ARM's bf16 extensions are not what these checks look for
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(check is None for check in checks):
        return False
    return not any(check() for check in checks)


# oneDNN (bfloat16 matrix multiplies on CPU) keeps a compiled kernel for every matrix shape it meets, up to
# 1,024 by default, and token-budget batches come in many shapes: over 200 bf16 training steps of the
# benchmark Transformer peak memory grew to 2.9 GiB with the default and 2.2 GiB with 64, at the same speed.
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


def parse_device(name: str, option: str = "--device") -> torch.device:
    """``torch.device(name)``, refusing with a clear message a name that is no device or a GPU this machine lacks."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NmtError(f"{option} '{name}' is not a device name; use cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise NmtError(f"{option} {name}: no such CUDA device here ({torch.cuda.device_count()} found). Use cpu.")
    return device
