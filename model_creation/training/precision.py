"""The arithmetic a training run computes in, chosen at run time from what the device does natively.

* CUDA: float16 autocast with a gradient scaler (``--no-amp``: float32);
* a CPU with native bfloat16 (AVX-512 BF16 or AMX, as oneDNN reports it): bfloat16 autocast, which needs no
  scaler (bfloat16 has float32's range);
* any other CPU: float32, because there bfloat16 is emulated and slower than float32.

The checkpoint records the choice (``training["precision"]``): a run on another machine may have computed in another
precision, which moves the last digits of its figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    name: str  # "float16", "bfloat16" or "float32"
    autocast: torch.dtype | None  # the autocast dtype, None for float32
    scaled: bool  # whether gradients need a GradScaler (float16 only)

    @property
    def enabled(self) -> bool:
        return self.autocast is not None


FLOAT32 = Precision("float32", None, False)


def cpu_has_native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (False where it would emulate it, or cannot tell)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(device: torch.device, amp: bool) -> Precision:
    """What a run on ``device`` computes in (``amp`` False: float32 everywhere)."""
    if not amp:
        return FLOAT32
    if device.type == "cuda":
        return Precision("float16", torch.float16, True)
    if device.type == "cpu" and cpu_has_native_bfloat16():
        return Precision("bfloat16", torch.bfloat16, False)
    return FLOAT32
