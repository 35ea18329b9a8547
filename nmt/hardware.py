"""What the machine's CPU does fast, for advice on precision."""

from __future__ import annotations

import platform

import torch


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
