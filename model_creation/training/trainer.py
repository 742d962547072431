"""The training loop: group-aware split, class balance, per-sequence augmentation, warm-up + cosine schedule, early
stopping, mixed precision on CUDA, DistributedDataParallel under torchrun, and a resumable state.

Files in the output folder (written by rank 0 only):

* ``last.pt`` after every epoch and ``best.pt`` (best validation AUC): checkpoints in the app's format, with the
  manifest's preprocessing, the validation metrics and the manifest's sha256; ``epoch_NNN.pt`` with
  ``keep_every_epoch``;
* ``train_state.pt``: weights, optimiser, scheduler, gradient scaler, RNG states, history and early-stopping counter,
  plain containers and tensors only (``torch.load(weights_only=True)``), for ``--resume``;
* ``history.csv``, ``tensorboard/``, ``plots/`` (curves, ROC, confusion matrix) and ``summary.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from ml_app.detection.checkpoints import new_checkpoint, save_checkpoint
from ml_app.detection.network import BACKBONES, DeepfakeDetector, ModelConfig

from . import rng_state
from .augment import AugmentSettings
from .dataset import ClipDataset, ClipItem, with_self_blended
from .distributed import Distributed, setup
from .evaluate import fake_probabilities, level_metrics, usable_items
from .history import EpochLog
from .manifest import Manifest, load_manifest
from .metrics import binary_metrics, json_safe
from .plots import plot_confusion, plot_curves, plot_roc
from .sbi import SbiSettings
from .schedule import warmup_cosine
from .splits import TRAIN, VAL, SplitError, assign_splits

log = logging.getLogger(__name__)

STATE_FORMAT = "deepfake-train-state"
STATE_FILE = "train_state.pt"
# What a resumed run may change; everything else must match the interrupted run.
RESUMABLE = frozenset({"epochs", "patience", "device", "workers", "progress", "tensorboard", "keep_every_epoch"})


class TrainError(ValueError):
    """A training run that cannot start or continue; the message says why."""


@dataclass
class TrainConfig:
    manifest: str
    output: str
    sequence_length: int | None = None  # None: the manifest's window length
    backbone: str = "resnext50_32x4d"
    hidden_size: int | None = None  # None: the backbone's feature size
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.4
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_factor: float = 0.01
    patience: int = 5  # epochs without a better validation AUC before stopping
    val_fraction: float = 0.15
    use_manifest_split: bool = True
    balance: str = "loss"  # loss (class weights), sampler (weighted sampling) or none
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    amp: bool = True  # mixed precision, CUDA only
    pretrained: str = "imagenet"
    synthesize_fakes: str = ""  # "sbi": self-blended fakes from every real clip, in training and validation
    keep_every_epoch: bool = False
    name: str = ""
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise TrainError(f"Unknown backbone '{self.backbone}'; choose one of {', '.join(BACKBONES)}.")
        if self.balance not in ("loss", "sampler", "none"):
            raise TrainError("--balance must be loss, sampler or none.")
        if self.synthesize_fakes not in ("", "sbi"):
            raise TrainError("--synthesize-fakes knows only sbi (self-blended images).")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 1 or self.workers < 0:
            raise TrainError("--epochs, --batch-size and --patience must be at least 1, --lr positive.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    output: Path
    best_path: Path | None
    last_path: Path | None
    best_epoch: int
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


class WeightedEpochSampler(Sampler[int]):
    """Draws (with replacement) by weight, the same draw on every rank, each rank taking its slice."""

    def __init__(self, weights: list[float], rank: int, world_size: int, seed: int):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0
        self.per_rank = math.ceil(len(weights) / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.per_rank * self.world_size, replacement=True, generator=generator)
        return iter(drawn[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank


def _plain(module: nn.Module) -> DeepfakeDetector:
    return module.module if isinstance(module, DistributedDataParallel) else module  # type: ignore[return-value]


class Trainer:
    def __init__(self, config: TrainConfig, say: Callable[[str], None] | None = None, resume: Path | None = None):
        self.config = config
        self.dist: Distributed = setup(config.device)
        self._say = say or (lambda message: None)
        self.output = Path(config.output)
        self.resume_path = resume
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": 0, "score": -math.inf, "metrics": {}}
        self.bad_epochs = 0
        self.start_epoch = 0

    def say(self, message: str) -> None:
        if self.dist.is_main:
            self._say(message)

    # --- data -------------------------------------------------------------------------------------------------------

    def _load_data(self) -> None:
        config = self.config
        try:
            self.manifest: Manifest = load_manifest(config.manifest)
        except ValueError as exc:
            raise TrainError(str(exc)) from exc
        manifest = self.manifest
        length = config.sequence_length or manifest.sequence_length
        if length > manifest.sequence_length:
            raise TrainError(
                f"--sequence-length {length} is longer than the manifest's clips ({manifest.sequence_length} frames); "
                "preprocess with a longer --sequence-length."
            )
        self.sequence_length = length
        videos = [video for video in manifest.videos if video.status == "ok" and video.clips]
        if not videos:
            raise TrainError(f"'{manifest.path}' has no video with face clips to train on.")
        try:
            self.split = assign_splits(videos, config.val_fraction, config.seed, config.use_manifest_split)
        except SplitError as exc:
            raise TrainError(str(exc)) from exc
        if self.split.leaking_groups:
            self.say(
                f"warning: the manifest's own split puts {len(self.split.leaking_groups)} group(s) on more than one "
                f"side (e.g. {', '.join(self.split.leaking_groups[:3])}); pass --ignore-manifest-split to split by "
                "group instead."
            )
        items = {name: usable_items(self.split.videos(videos, name)) for name in (TRAIN, VAL)}
        self.counts = self.split.counts(videos)
        self.synthesized = {TRAIN: 0, VAL: 0}
        if config.synthesize_fakes == "sbi":
            for name in (TRAIN, VAL):
                before = len(items[name])
                items[name] = with_self_blended(items[name])
                self.synthesized[name] = len(items[name]) - before
        for name in (TRAIN, VAL):
            labels = Counter(item.video.label for item in items[name])
            if name == TRAIN and len(labels) < 2:
                raise TrainError(f"The training split has only {dict(labels)}: both REAL and FAKE clips are needed.")
            if not items[name]:
                raise TrainError(f"The {name} split is empty.")
        augment = AugmentSettings() if config.augment else None
        self.train_set = ClipDataset(manifest, items[TRAIN], length, augment, config.seed)
        self.val_set = ClipDataset(manifest, items[VAL], length, None, config.seed)
        self.val_items: list[ClipItem] = items[VAL]
        targets = self.train_set.targets()
        per_class = Counter(targets)
        self.class_weights = torch.tensor(
            [len(targets) / (2 * per_class[c]) if per_class[c] else 0.0 for c in range(2)], dtype=torch.float32
        )
        dist = self.dist
        if config.balance == "sampler":
            weights = [1.0 / per_class[t] for t in targets]
            self.train_sampler: Sampler = WeightedEpochSampler(weights, dist.rank, dist.world_size, config.seed)
        else:
            self.train_sampler = DistributedSampler(
                self.train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=config.seed
            )
        self.val_sampler = DistributedSampler(self.val_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=False)
        pin = dist.device.type == "cuda"
        self.train_loader = DataLoader(
            self.train_set, config.batch_size, sampler=self.train_sampler, num_workers=config.workers, pin_memory=pin
        )
        self.val_loader = DataLoader(
            self.val_set, config.batch_size, sampler=self.val_sampler, num_workers=config.workers, pin_memory=pin
        )

    # --- model ------------------------------------------------------------------------------------------------------

    def _build_model(self) -> None:
        config = self.config
        self.architecture = ModelConfig(
            backbone=config.backbone,
            hidden_size=config.hidden_size or BACKBONES[config.backbone],
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
        )
        rng_state.seed_everything(config.seed)
        pretrained = None if self.resume_path else config.pretrained
        model = DeepfakeDetector(self.architecture, pretrained=pretrained)
        self.backbone_init = model.pretrained_from
        device = self.dist.device
        model.to(device)
        if self.dist.enabled:
            model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = max(1, len(self.train_loader))
        warmup = round(config.warmup_epochs * steps_per_epoch)
        total = config.epochs * steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: warmup_cosine(step, warmup, total, config.min_lr_factor)
        )
        self.amp = config.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.criterion = nn.CrossEntropyLoss(weight=self.class_weights.to(device) if config.balance == "loss" else None)

    # --- resuming ---------------------------------------------------------------------------------------------------

    def _state(self, epoch: int) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "format_version": 1,
            "epoch": epoch,
            "config": self.config.to_dict(),
            "manifest_sha256": self.manifest.sha256,
            "model": _plain(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state.capture(),
            "history": self.history,
            "best": {"epoch": self.best["epoch"], "score": self.best["score"], "metrics": self.best["metrics"]},
            "bad_epochs": self.bad_epochs,
            "backbone_init": self.backbone_init,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("manifest_sha256") != self.manifest.sha256:
            raise TrainError(
                "The manifest changed since the interrupted run (its sha256 differs); resume with the same manifest "
                "or start a new run in a new --output folder."
            )
        _plain(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.start_epoch = int(state["epoch"])
        self.backbone_init = state.get("backbone_init", "resumed")
        rng_state.restore(state["rng"])

    # --- epochs -----------------------------------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        model, device = self.model, self.dist.device
        model.train()
        self.train_set.set_epoch(epoch)
        self.train_sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="batch",
            file=sys.stderr,
            disable=not (self.config.progress and self.dist.is_main),
            leave=False,
        )
        for batch, labels, _ in bar:
            clips, targets = batch.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=self.amp):
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
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}")
        gathered = sum(self.dist.gather(totals))
        return float(gathered[0] / max(1, gathered[2])), float(gathered[1] / max(1, gathered[2]))

    def _validate(self) -> np.ndarray:
        """Fake probability of every validation clip, scored by all ranks and gathered."""
        model = _plain(self.model)
        model.eval()
        fake_index = self.manifest.preprocessing.fake_index
        indices, scores = [], []
        with torch.inference_mode():
            for clips, _, index in self.val_loader:
                with torch.autocast(device_type=self.dist.device.type, dtype=torch.float16, enabled=self.amp):
                    logits = model(clips.to(self.dist.device))
                scores.extend(fake_probabilities(logits, fake_index).cpu().tolist())
                indices.extend(index.tolist())
        result = np.zeros(len(self.val_set))
        for part_indices, part_scores in self.dist.gather((indices, scores)):
            result[np.asarray(part_indices, dtype=np.int64)] = part_scores
        return result

    # --- outputs ----------------------------------------------------------------------------------------------------

    def _checkpoint(self, epoch: int, metrics: dict[str, Any]):
        config = self.config
        training = {
            "made_by": "train_model",
            "epoch": epoch,
            "epochs": config.epochs,
            "best_epoch": self.best["epoch"],
            "config": {key: value for key, value in config.to_dict().items() if key not in ("progress",)},
            "backbone_init": self.backbone_init,
            "manifest": str(self.manifest.path),
            "manifest_sha256": self.manifest.sha256,
            "datasets": sorted({video.dataset for video in self.manifest.videos}),
            "clips": self.counts,
            "split_source": self.split.source,
            "augment": AugmentSettings().to_dict() if config.augment else None,
            "self_blended_clips": self.synthesized,
            "self_blending": SbiSettings().to_dict() if config.synthesize_fakes == "sbi" else None,
            "world_size": self.dist.world_size,
            "device": self.dist.device.type,
            "mixed_precision": self.amp,
        }
        return new_checkpoint(
            self.architecture,
            self.manifest.preprocessing,
            self.sequence_length,
            model=_plain(self.model),
            name=config.name,
            training=training,
            metrics=json_safe(metrics),
            origin={"made_by": "manage.py train_model", "trained_at": dt.datetime.now(dt.UTC).isoformat()},
        )

    def _epoch_metrics(self, scores: np.ndarray) -> dict[str, Any]:
        labels = [int(item.video.label == "FAKE") for item in self.val_items]
        clip = binary_metrics(labels, scores)
        video = level_metrics(self.val_items, scores, "video")
        return {
            **{key: clip[key] for key in ("accuracy", "precision", "recall", "f1", "auc", "eer", "log_loss")},
            "confusion": clip["confusion"],
            "video_auc": video["auc"],
            "video_accuracy": video["accuracy"],
            "video_confusion": video["confusion"],
            "split": "validation",
            "level": "clip",
            "clips": clip["n"],
            "videos": video["n"],
        }

    def _plots(self, scores: np.ndarray, metrics: dict[str, Any]) -> None:
        """ROC and confusion matrix of the best epoch so far."""
        folder = self.output / "plots"
        labels = [int(item.video.label == "FAKE") for item in self.val_items]
        plot_roc({"validation clips": (labels, scores)}, folder / "roc_validation.png", "Validation ROC (best epoch)")
        plot_confusion(metrics["confusion"], folder / "confusion_validation.png", "Validation clips (best epoch)")

    # --- the run ----------------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            self.dist.close()

    def _run(self) -> TrainResult:
        config, dist = self.config, self.dist
        self._load_data()
        self._build_model()
        if self.resume_path:
            state = torch.load(self.resume_path, map_location="cpu", weights_only=True)
            self._restore(state)
            self.say(f"Resumed after epoch {self.start_epoch} from {self.resume_path}.")
        if dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        epoch_log = EpochLog(self.output, self.history, config.tensorboard) if dist.is_main else None
        counts = self.counts
        self.say(
            f"Training {self.architecture.backbone} (hidden {self.architecture.hidden_size}, backbone init "
            f"{self.backbone_init}) on {self.sequence_length}-frame clips, device {dist.device}"
            + (f" x {dist.world_size} processes" if dist.enabled else "")
            + f"; split by {self.split.source}: train {counts[TRAIN]}, validation {counts[VAL]} clips"
            + (
                f" (+ {self.synthesized[TRAIN]} / {self.synthesized[VAL]} self-blended fakes)."
                if config.synthesize_fakes
                else "."
            )
        )
        for epoch in range(self.start_epoch, config.epochs):
            if self.bad_epochs >= config.patience:
                break
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
            self.history.append(row)
            # Best by validation AUC; while AUC is undefined (one class only), by validation loss.
            score = metrics["auc"] if math.isfinite(metrics["auc"]) else -metrics["log_loss"]
            improved = score > self.best["score"] + 1e-6
            if improved:
                self.best = {"epoch": epoch + 1, "score": score, "metrics": json_safe(metrics)}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            self.say(
                f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_accuracy:.3f} | val loss "
                f"{metrics['log_loss']:.4f} acc {metrics['accuracy']:.3f} AUC {metrics['auc']:.3f} video AUC "
                f"{metrics['video_auc']:.3f} | {row['seconds']:.1f} s" + ("  *best*" if improved else "")
            )
            if dist.is_main:
                assert epoch_log is not None
                epoch_log.epoch(row)
                checkpoint = self._checkpoint(epoch + 1, metrics)
                save_checkpoint(checkpoint, self.output / "last.pt")
                if improved:
                    save_checkpoint(checkpoint, self.output / "best.pt")
                    self._plots(scores, metrics)
                if config.keep_every_epoch:
                    save_checkpoint(checkpoint, self.output / f"epoch_{epoch + 1:03d}.pt")
                torch.save(self._state(epoch + 1), self.output / STATE_FILE)
                plot_curves(self.history, self.output / "plots" / "curves.png")
            dist.barrier()
        stopped_early = self.bad_epochs >= config.patience and len(self.history) < config.epochs
        result = TrainResult(
            output=self.output,
            best_path=self.output / "best.pt" if self.best["epoch"] else None,
            last_path=self.output / "last.pt" if self.history else None,
            best_epoch=int(self.best["epoch"]),
            best_metrics=self.best["metrics"],
            history=self.history,
            stopped_early=stopped_early,
        )
        if dist.is_main:
            summary = {
                "best_epoch": result.best_epoch,
                "best_metrics": result.best_metrics,
                "stopped_early": stopped_early,
                "epochs_run": len(self.history),
                "clips": counts,
                "split_source": self.split.source,
                "leaking_groups": self.split.leaking_groups[:50],
                "manifest_sha256": self.manifest.sha256,
                "config": config.to_dict(),
            }
            (self.output / "summary.json").write_text(json.dumps(json_safe(summary), indent=2))
            if epoch_log is not None:
                epoch_log.close()
        return result
