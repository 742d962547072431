"""Learning rate as a factor of the base rate per optimiser step: a linear warm-up, then the chosen schedule.

Every schedule is a function of the step (0-based), stepped once per batch through one ``LambdaLR``, so a resumed
run continues it exactly and a ``train_state.pt`` holds nothing but the step count. The warm-up
(``--warmup-epochs``, any of them) ramps linearly from ~0 to the base rate; the schedule starts when it ends, its
own epochs counted from there:

* ``cosine`` (the default): a cosine decay to ``floor`` (``min_lr_factor``) at the last step of the run;
* ``cosine-restarts``: the curve of torch's ``CosineAnnealingWarmRestarts`` (``T_0`` = ``t0`` epochs, ``T_mult`` =
  ``t_mult``, ``eta_min`` = the floor): a cosine to the floor, then back to the base rate after ``t0`` epochs, after
  ``t0 * (1 + t_mult)``, and so on, each cycle ``t_mult`` times longer than the last;
* ``step``: torch's ``StepLR``: multiplied by ``gamma`` every ``step_size`` epochs;
* ``none``: constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float = 0.01) -> float:
    """Factor for ``step`` (0-based): ramps from ~0 to 1 over ``warmup_steps``, then falls to ``floor`` at the end."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    remaining = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / remaining)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_restarts(step: int, first_cycle: int, growth: int, floor: float = 0.0) -> float:
    """Factor of torch's CosineAnnealingWarmRestarts after ``step`` steps (cycles of ``first_cycle`` steps, each
    ``growth`` times longer than the last)."""
    position, cycle = step, first_cycle
    if growth == 1:
        position = step % first_cycle
    else:
        while position >= cycle:
            position -= cycle
            cycle *= growth
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * position / cycle))


@dataclass(frozen=True)
class Schedule:
    """A run's schedule in steps: which one, the warm-up, the run's length and the schedule's own settings."""

    name: str
    steps_per_epoch: int
    warmup_steps: int
    total_steps: int
    floor: float = 0.01
    t0: int = 10
    t_mult: int = 2
    step_size: int = 5
    gamma: float = 0.1

    def factor(self, step: int) -> float:
        if self.name == "cosine":
            return warmup_cosine(step, self.warmup_steps, self.total_steps, self.floor)
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        after = step - self.warmup_steps
        if self.name == "cosine-restarts":
            return cosine_restarts(after, self.t0 * self.steps_per_epoch, self.t_mult, self.floor)
        if self.name == "step":
            return self.gamma ** (after // (self.step_size * self.steps_per_epoch))
        return 1.0
