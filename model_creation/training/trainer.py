"""The training loop: warm-up + schedule (:mod:`.optimisers`), early stopping on a monitored metric
(:mod:`.stopping`), mixed precision on CUDA, DistributedDataParallel under torchrun, per-epoch validation and the
files a run leaves.

The run's settings are :mod:`.config`, its data (split, class balance, augmentation, loaders) :mod:`.loading`, its
resumable state :mod:`.train_state`. Files in the output folder (written by rank 0 only):

* ``last.pt`` after every epoch and ``best.pt`` (best monitored validation metric): checkpoints in the app's
  format, with the manifest's preprocessing, the validation metrics and the manifest's sha256; ``epoch_NNN.pt`` with
  ``keep_every_epoch``;
* ``train_state.pt`` for ``--resume`` (see :mod:`.train_state`);
* ``history.csv``, ``tensorboard/``, ``plots/`` (curves, ROC, confusion matrix) and ``summary.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ml_app.detection.checkpoints import CheckpointFile, new_checkpoint, save_checkpoint
from ml_app.detection.network import DeepfakeDetector, ModelConfig, get_backbone, use_fast_layout
from ml_app.detection.scoring import fake_probabilities

from . import rng_state
from .config import RESUMABLE, TrainConfig, TrainError, TrainResult
from .distributed import Distributed, setup
from .evaluate import level_metrics
from .history import EpochLog
from .loading import TrainingData, WeightedEpochSampler, load_training_data
from .metrics import binary_metrics, json_safe
from .optimisers import build_optimizer, build_scheduler, describe
from .plots import plot_confusion, plot_curves, plot_roc
from .precision import choose_precision
from .run_record import training_record
from .run_setup import is_trunk_source
from .splits import TRAIN, VAL
from .stopping import record_epoch, should_stop
from .train_state import (
    STATE_FILE,
    Optimisation,
    Progress,
    capture_state,
    initialise_from,
    initialise_trunk,
    load_state,
    restore_state,
    save_state,
)
from .validation_scores import VALIDATION_SCORES, write_validation_scores

# Importable from here as before the split into modules.
__all__ = [
    "RESUMABLE",
    "STATE_FILE",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "Trainer",
    "WeightedEpochSampler",
]


class Trainer:
    def __init__(self, config: TrainConfig, say: Callable[[str], None] | None = None, resume: Path | None = None):
        self.config = config
        self.dist: Distributed = setup(config.device)
        self._say = say or (lambda message: None)
        self.output = Path(config.output)
        self.resume_path = resume
        self.progress = Progress()
        self.best_scores: np.ndarray | None = None  # validation scores at the best epoch (for calibration)

    def say(self, message: str) -> None:
        if self.dist.is_main:
            self._say(message)

    # --- model ------------------------------------------------------------------------------------------------------

    def _build_model(self, data: TrainingData) -> None:
        config = self.config
        self.architecture = ModelConfig(
            backbone=config.backbone,
            hidden_size=config.hidden_size or get_backbone(config.backbone).feature_size,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
            head="frame" if config.frame_model else "mean",
        )
        rng_state.seed_everything(config.seed)
        pretrained = None if self.resume_path or config.init_from else config.pretrained
        trunk = pretrained if is_trunk_source(pretrained) else None  # a trained model's backbone
        network = DeepfakeDetector(self.architecture, pretrained=None if trunk else pretrained)
        self.progress.backbone_init = initialise_trunk(network, Path(trunk)) if trunk else network.pretrained_from
        if config.init_from and not self.resume_path:
            self.progress.backbone_init = initialise_from(network, Path(config.init_from))
            self.say(f"Fine-tuning from the weights of {config.init_from}; its optimiser state is not restored.")
        device = self.dist.device
        network = use_fast_layout(network.to(device), device)
        self.network = network  # the plain module: what checkpoints and validation use
        self.model: nn.Module = network
        if self.dist.enabled:
            self.model = DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = build_optimizer(self.model.parameters(), config)
        self.scheduler = build_scheduler(self.optimizer, config, len(data.train_loader))
        self.precision = choose_precision(device, config.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.scaled)
        weight = data.class_weights.to(device) if config.balance == "loss" else None
        self.criterion = nn.CrossEntropyLoss(weight=weight)

    def _autocast(self):
        precision = self.precision
        return torch.autocast(self.dist.device.type, dtype=precision.autocast, enabled=precision.enabled)

    def _parts(self) -> Optimisation:
        return Optimisation(self.network, self.optimizer, self.scheduler, self.scaler)

    # --- epochs -----------------------------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        model, device, data = self.model, self.dist.device, self.data
        model.train()
        data.train_set.set_epoch(epoch)
        data.train_sampler.set_epoch(epoch)
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        bar = tqdm(
            data.train_loader,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="batch",
            file=sys.stderr,
            disable=not (self.config.progress and self.dist.is_main),
            leave=False,
        )
        for batch, labels, _ in bar:
            clips, targets = batch.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with self._autocast():
                logits = model(clips)
            loss = self.criterion(logits.float(), targets)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            count = targets.numel()
            totals += torch.tensor([loss.item() * count, (logits.argmax(1) == targets).sum().item(), count])
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}", acc=f"{totals[1] / totals[2]:.3f}")
        gathered = sum(self.dist.gather(totals))
        return float(gathered[0] / max(1, gathered[2])), float(gathered[1] / max(1, gathered[2]))

    def _validate(self) -> np.ndarray:
        """Fake probability of every validation clip, scored by all ranks and gathered. In float32, as the app and
        ``evaluate_model`` score: calibrations and thresholds are fitted on these scores, so they must be the scores
        inference will give (mixed precision is for the training steps only)."""
        model = self.network
        model.eval()
        fake_index = self.data.preprocessing.fake_index
        indices, scores = [], []
        with torch.inference_mode():
            for clips, _, index in self.data.val_loader:
                logits = model(clips.to(self.dist.device))
                scores.extend(fake_probabilities(logits.float(), fake_index).cpu().tolist())
                indices.extend(index.tolist())
        result = np.zeros(len(self.data.val_set))
        for part_indices, part_scores in self.dist.gather((indices, scores)):
            result[np.asarray(part_indices, dtype=np.int64)] = part_scores
        return result

    def _epoch(self, epoch: int) -> tuple[dict[str, Any], dict[str, Any], np.ndarray, bool]:
        """Train and validate once: the history row, the validation metrics and scores, and whether it is the best."""
        started = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]  # at the epoch's start (the schedule moves every step)
        train_loss, train_accuracy = self._train_epoch(epoch)
        scores = self._validate()
        metrics = self._epoch_metrics(scores)
        row = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": metrics["log_loss"],
            "val_accuracy": metrics["accuracy"],
            "val_auc": metrics["auc"],
            "val_eer": metrics["eer"],
            "val_video_auc": metrics["video_auc"],
            "val_video_accuracy": metrics["video_accuracy"],
            "seconds": round(time.perf_counter() - started, 3),
        }
        self.progress.history.append(row)
        config = self.config
        improved = record_epoch(self.progress, epoch + 1, json_safe(metrics), config.monitor, config.min_delta)
        if improved:
            self.best_scores = scores.copy()
        self.say(
            f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_accuracy:.3f} | val loss "
            f"{metrics['log_loss']:.4f} acc {metrics['accuracy']:.3f} AUC {metrics['auc']:.3f} video AUC "
            f"{metrics['video_auc']:.3f} | {row['seconds']:.1f} s" + ("  *best*" if improved else "")
        )
        return row, metrics, scores, improved

    # --- outputs ----------------------------------------------------------------------------------------------------

    def _checkpoint(self, epoch: int, metrics: dict[str, Any]) -> CheckpointFile:
        config, data = self.config, self.data
        training = training_record(config, data, self.progress, self.precision, self.dist, epoch)
        return new_checkpoint(
            self.architecture,
            data.preprocessing,
            data.sequence_length,
            model=self.network,
            name=config.name,
            training=training,
            metrics=json_safe(metrics),
            origin={"made_by": "manage.py train_model", "trained_at": dt.datetime.now(dt.UTC).isoformat()},
        )

    def _labels(self) -> list[int]:
        return [int(item.video.label == "FAKE") for item in self.data.val_items]

    def _epoch_metrics(self, scores: np.ndarray) -> dict[str, Any]:
        if not self.data.val_items:  # --val-fraction 0: nothing validates
            nan = float("nan")
            keys = ("accuracy", "auc", "eer", "log_loss", "video_auc", "video_accuracy")
            return {**dict.fromkeys(keys, nan), "split": "none", "clips": 0, "videos": 0}
        clip = binary_metrics(self._labels(), scores)
        video = level_metrics(self.data.val_items, cast(Sequence[float], scores), "video")
        return {
            **{key: clip[key] for key in ("accuracy", "precision", "recall", "f1", "auc", "eer", "log_loss")},
            "confusion": clip["confusion"],
            "video_auc": video["auc"],
            "video_accuracy": video["accuracy"],
            "video_f1": video["f1"],
            "video_eer": video["eer"],
            "video_confusion": video["confusion"],
            "split": "validation",
            "level": "clip",
            "clips": clip["n"],
            "videos": video["n"],
        }

    def _plots(self, scores: np.ndarray, metrics: dict[str, Any]) -> None:
        """ROC and confusion matrix of the best epoch so far (none without validation clips)."""
        if not self.data.val_items:
            return
        folder = self.output / "plots"
        curves = {"validation clips": (self._labels(), cast(Sequence[float], scores))}
        plot_roc(curves, folder / "roc_validation.png", "Validation ROC (best epoch)")
        plot_confusion(metrics["confusion"], folder / "confusion_validation.png", "Validation clips (best epoch)")

    def _save_epoch(self, epoch: int, metrics: dict[str, Any], scores: np.ndarray, improved: bool) -> None:
        """Rank 0's files after an epoch: checkpoints, plots and the resumable state."""
        checkpoint = self._checkpoint(epoch + 1, metrics)
        save_checkpoint(checkpoint, self.output / "last.pt")
        if improved:
            save_checkpoint(checkpoint, self.output / "best.pt")
            write_validation_scores(self.output / VALIDATION_SCORES, self.data.val_items, scores, epoch + 1)
            self._plots(scores, metrics)
        if self.config.keep_every_epoch:
            save_checkpoint(checkpoint, self.output / f"epoch_{epoch + 1:03d}.pt")
        state = capture_state(epoch + 1, self.config, self.data.fingerprint, self._parts(), self.progress)
        save_state(state, self.output / STATE_FILE)
        plot_curves(self.progress.history, self.output / "plots" / "curves.png")

    def _announce(self) -> None:
        data, dist, counts = self.data, self.dist, self.data.counts
        model = "frame model" if self.architecture.is_frame_model else f"hidden {self.architecture.hidden_size}"
        self.say(
            f"Training {self.architecture.backbone} ({model}, backbone init {self.progress.backbone_init}) on "
            f"{data.sequence_length}-frame clips (validated on {data.val_length}), device {dist.device}"
            + (f" x {dist.world_size} processes" if dist.enabled else "")
            + f"; split by {data.split.source}: train {counts[TRAIN]}, validation {counts[VAL]} clips"
            + (
                f" (+ {data.synthesized[TRAIN]} / {data.synthesized[VAL]} self-blended fakes)."
                if self.config.synthesize_fakes
                else "."
            )
        )
        self.say(f"Optimisation: {describe(self.config)}.")

    def _write_summary(self, result: TrainResult) -> None:
        summary = {
            "best_epoch": result.best_epoch,
            "best_metrics": result.best_metrics,
            "stopped_early": result.stopped_early,
            "epochs_run": len(result.history),
            "clips": self.data.counts,
            "split_source": self.data.split.source,
            "leaking_groups": self.data.split.leaking_groups[:50],
            "manifest_sha256": self.data.manifest.sha256,
            "config": self.config.to_dict(),
            "calibration": (
                {k: v for k, v in result.calibration.items() if k != "fitted_on"} if result.calibration else None
            ),
        }
        (self.output / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))

    # --- the run ----------------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            self.dist.close()

    def _run(self) -> TrainResult:
        config, dist = self.config, self.dist
        self.data = load_training_data(config, dist, self.say)
        self._build_model(self.data)
        if self.resume_path:
            self.progress = restore_state(load_state(self.resume_path), self.data.fingerprint, self._parts())
            self.say(f"Resumed after epoch {self.progress.start_epoch} from {self.resume_path}.")
        if dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        progress = self.progress
        epoch_log = EpochLog(self.output, progress.history, config.tensorboard) if dist.is_main else None
        self._announce()
        for epoch in range(progress.start_epoch, config.epochs):
            if should_stop(progress, config.patience):
                break
            row, metrics, scores, improved = self._epoch(epoch)
            if epoch_log is not None:
                epoch_log.epoch(row)
                self._save_epoch(epoch, metrics, scores, improved)
            dist.barrier()
        result = TrainResult(
            output=self.output,
            best_path=self.output / "best.pt" if progress.best["epoch"] else None,
            last_path=self.output / "last.pt" if progress.history else None,
            best_epoch=int(progress.best["epoch"]),
            best_metrics=progress.best["metrics"],
            history=progress.history,
            stopped_early=should_stop(progress, config.patience) and len(progress.history) < config.epochs,
        )
        if epoch_log is not None:
            if result.best_path and config.calibration != "none":
                result.calibration = self._calibrate(result.best_path)
            self._write_summary(result)
            epoch_log.close()
        return result

    def _calibrate(self, best: Path) -> dict[str, Any] | None:
        """Fit the calibration and thresholds on the validation clips' scores at the best epoch, store them in
        best.pt and plot the reliability diagram. A validation split that cannot support it is warned about."""
        from .calibrate import CalibrationError, calibrate_checkpoint_file, describe_calibration
        from .evaluate import score_dataset
        from .plots import plot_reliability

        if not self.data.val_items:
            self.say("best.pt is not calibrated: nothing was validated (calibrate it with calibrate_model).")
            return None
        scores = self.best_scores
        if scores is None:  # resumed after the best epoch: score the validation clips again with best.pt
            from ml_app.detection.checkpoints import build_model, load_checkpoint

            model = use_fast_layout(build_model(load_checkpoint(best)).to(self.dist.device), self.dist.device)
            scores = score_dataset(model, self.data.val_set, self.dist.device, self.config.batch_size, progress=False)
        source = {"split": "validation", "manifest_sha256": self.data.manifest.sha256, "fitted_by": "train_model"}
        try:
            calibration = calibrate_checkpoint_file(
                best,
                self.data.val_items,
                scores,
                self.config.calibration,
                self.config.max_fpr,
                self.config.max_miss,
                source,
                min_margin=self.config.min_margin,
            )
        except CalibrationError as exc:
            self.say(f"warning: best.pt is not calibrated: {exc}.")
            return None
        plot_reliability(calibration.metrics["clip"], self.output / "plots" / "reliability_validation.png")
        self.say(describe_calibration(calibration))
        return calibration.to_dict()
