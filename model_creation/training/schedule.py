"""Learning rate: linear warm-up, then a cosine decay to a floor, as a factor of the base rate per optimiser step."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float = 0.01) -> float:
    """Factor for ``step`` (0-based): ramps from ~0 to 1 over ``warmup_steps``, then falls to ``floor`` at the end."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / remaining)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
