"""The optimiser (``--optimizer adamw|adam|sgd``) and the learning-rate scheduler (:mod:`.schedule`) of a run.

AdamW decays the weights apart from the gradient; Adam adds ``weight_decay`` to the gradient (L2); SGD uses momentum
0.9 (with ``weight_decay`` as L2). The scheduler is a ``LambdaLR`` stepped once per batch whatever the schedule, so
its state is a step count a resumed run continues from; a resumed run keeps its optimiser and schedule (neither is
in ``config.RESUMABLE``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .config import TrainConfig
from .schedule import Schedule

SGD_MOMENTUM = 0.9


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=SGD_MOMENTUM, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def schedule_of(config: TrainConfig, steps_per_epoch: int) -> Schedule:
    """The run's schedule in optimiser steps (``steps_per_epoch``: batches per epoch and process)."""
    steps_per_epoch = max(1, steps_per_epoch)
    return Schedule(
        name=config.scheduler,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        total_steps=config.epochs * steps_per_epoch,
        floor=config.min_lr_factor,
        t0=config.t0,
        t_mult=config.t_mult,
        step_size=config.step_size,
        gamma=config.gamma,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    schedule = schedule_of(config, steps_per_epoch)

    def factor(step: int) -> float:  # a plain function, which LambdaLR leaves out of its state (a step count)
        return schedule.factor(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def describe(config: TrainConfig) -> str:
    """The optimiser and schedule in words, for the log."""
    warmup = f"{config.warmup_epochs:g} warm-up epoch(s), then " if config.warmup_epochs else ""
    schedule = {
        "cosine": f"cosine decay to {config.min_lr_factor:g} x lr",
        "cosine-restarts": f"cosine with warm restarts (t0 {config.t0} epochs, t-mult {config.t_mult})",
        "step": f"x {config.gamma:g} every {config.step_size} epoch(s)",
        "none": "constant",
    }[config.scheduler]
    return (
        f"{config.optimizer} at lr {config.lr:g}, {warmup}{schedule}; best.pt by validation {config.monitor} "
        f"(min delta {config.min_delta:g}, patience {config.patience})"
    )
