"""The resumable state of a training run (``train_state.pt``): what it holds, writing it, and restoring from it.

The state holds the weights, optimiser, scheduler, gradient scaler, RNG states and :class:`Progress` (history, best
epoch, early-stopping counter, where the backbone's weights came from), as plain containers and tensors only, so it
loads with ``torch.load(weights_only=True)``. It is written atomically after every epoch; a resumed run must use
the manifest the interrupted one used. A run may instead start from the weights of a checkpoint file
(:func:`initialise_from`, fine-tuning): a new run, from epoch 1, with a fresh optimiser and schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ml_app.detection.files import atomic_write

from . import rng_state

if TYPE_CHECKING:
    from ml_app.detection.network import DeepfakeDetector
from .config import TrainConfig, TrainError

STATE_FORMAT = "deepfake-train-state"
STATE_FORMAT_VERSION = 1
STATE_FILE = "train_state.pt"


def _no_best() -> dict[str, Any]:
    return {"epoch": 0, "score": -math.inf, "metrics": {}}


@dataclass
class Progress:
    """How far a run has come: the part of the state that is not weights or optimiser."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=_no_best)  # epoch (1-based, 0: none yet), score, metrics
    bad_epochs: int = 0  # epochs since the best one
    start_epoch: int = 0  # epochs already done when this process started
    backbone_init: str = ""


@dataclass
class Optimisation:
    """The objects whose state a resumed run continues with."""

    model: nn.Module  # the plain module, never its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def capture_state(
    epoch: int, config: TrainConfig, manifest_sha256: str | None, parts: Optimisation, progress: Progress
) -> dict[str, Any]:
    """The state after ``epoch`` epochs, as ``torch.save`` stores it."""
    best = progress.best
    return {
        "format": STATE_FORMAT,
        "format_version": STATE_FORMAT_VERSION,
        "epoch": epoch,
        "config": config.to_dict(),
        "manifest_sha256": manifest_sha256,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "rng": rng_state.capture(),
        "history": progress.history,
        "best": {"epoch": best["epoch"], "score": best["score"], "metrics": best["metrics"]},
        "bad_epochs": progress.bad_epochs,
        "backbone_init": progress.backbone_init,
    }


def save_state(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda temporary: torch.save(state, temporary))


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def initialise_from(model: nn.Module, path: Path) -> str:
    """Load a checkpoint's weights into ``model`` (same architecture); returns how the backbone was initialised."""
    from ml_app.detection.checkpoints import load_checkpoint
    from ml_app.detection.errors import DetectionError

    try:
        checkpoint = load_checkpoint(path)
        model.load_state_dict(checkpoint.state_dict)
    except (DetectionError, RuntimeError) as exc:
        detail = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise TrainError(f"Cannot start from the weights of '{path}': {detail}") from exc
    return f"checkpoint {path}"


def initialise_trunk(model: DeepfakeDetector, path: Path) -> str:
    """Load the trained backbone of a checkpoint of the same backbone into ``model``'s trunk: a sequence model that
    starts from a frame model's features (``--pretrained CHECKPOINT``) learns its LSTM on features that already tell
    blending artefacts apart, in a fraction of the epochs."""
    from ml_app.detection.checkpoints import load_checkpoint
    from ml_app.detection.errors import DetectionError

    try:
        checkpoint = load_checkpoint(path)
    except DetectionError as exc:
        raise TrainError(f"Cannot take the backbone of '{path}': {exc.message}") from exc
    if checkpoint.architecture.backbone != model.config.backbone:
        raise TrainError(
            f"'{path}' has a {checkpoint.architecture.backbone} backbone, this run a {model.config.backbone}: "
            "--pretrained CHECKPOINT must have the same backbone."
        )
    trunk = {key.removeprefix("backbone."): value for key, value in checkpoint.state_dict.items()}
    model.backbone.load_state_dict({key: value for key, value in trunk.items() if key in model.backbone.state_dict()})
    return f"backbone of checkpoint {path}"


def restore_state(state: dict[str, Any], manifest_sha256: str | None, parts: Optimisation) -> Progress:
    """Load ``state`` into ``parts`` (and the RNGs); returns the run's progress. TrainError if the manifest changed."""
    if state.get("manifest_sha256") != manifest_sha256:
        raise TrainError(
            "The manifest or an --extra-train manifest changed since the interrupted run (its sha256 differs); "
            "resume with the same manifests or start a new run in a new --output folder."
        )
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    progress = Progress(
        history=list(state["history"]),
        best=dict(state["best"]),
        bad_epochs=int(state["bad_epochs"]),
        start_epoch=int(state["epoch"]),
        backbone_init=state.get("backbone_init", "resumed"),
    )
    rng_state.restore(state["rng"])
    return progress
