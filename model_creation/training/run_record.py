"""What a checkpoint records of the run that trained it (``training`` in the file): settings, data, what was drawn
and how it was computed, so a result can always say what made the model that gave it."""

from __future__ import annotations

from typing import Any

from .augment import AugmentSettings
from .config import TrainConfig
from .distributed import Distributed
from .loading import TrainingData
from .metrics import json_safe
from .optimisers import describe
from .photo_draw import PhotoDrawSampler
from .precision import Precision
from .sbi import SbiSettings
from .stopping import monitored_value
from .train_state import Progress


def training_record(
    config: TrainConfig, data: TrainingData, progress: Progress, precision: Precision, dist: Distributed, epoch: int
) -> dict[str, Any]:
    """The ``training`` record of the checkpoint saved after ``epoch`` (1-based)."""
    augment = AugmentSettings.for_training(config.augment, config.reencode)
    sampler = data.train_sampler
    return {
        "made_by": "train_model",
        "epoch": epoch,
        "epochs": config.epochs,
        "best_epoch": progress.best["epoch"],
        "monitor": {
            "metric": config.monitor,
            "min_delta": config.min_delta,
            "best": json_safe(monitored_value(progress.best["score"], config.monitor)),
        },
        "optimizer": config.optimizer,
        "scheduler": describe(config),
        "fold": {"fold": config.fold, "folds": config.folds} if config.folds else None,
        "config": {key: value for key, value in config.to_dict().items() if key not in ("progress",)},
        "backbone_init": progress.backbone_init,
        "manifest": str(data.manifest.path),
        "manifest_sha256": data.manifest.sha256,
        "datasets": sorted({video.dataset for m in (data.manifest, *data.extra) for video in m.videos}),
        "extra_train": [
            {"manifest": str(extra.path), "sha256": extra.sha256, "media": extra.media} for extra in data.extra
        ],
        "clips": data.counts,
        "split_source": data.split.source,
        "augment": augment.to_dict() if augment else None,
        "self_blended_clips": data.synthesized,
        "self_blending": SbiSettings().to_dict() if config.synthesize_fakes == "sbi" else None,
        "photo_degradation": data.train_set.degrade.to_dict() if data.train_set.degrade else None,
        "photo_draw": (
            {"per_epoch": sampler.per_epoch, "of": len(sampler.groups), "faces_seen": sampler.faces_seen(epoch)}
            if isinstance(sampler, PhotoDrawSampler)
            else None
        ),
        "world_size": dist.world_size,
        "device": dist.device.type,
        "mixed_precision": precision.enabled,
        "precision": precision.name,
    }
