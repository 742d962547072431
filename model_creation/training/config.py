"""What a training run is asked to do and what it returns: :class:`TrainConfig`, the one home of every training
default (``train_model``'s flags read their defaults and choices from here), the settings a resumed run may change,
and :class:`TrainResult`.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ml_app.detection.network import BACKBONE_NAMES

BALANCE_CHOICES = ("loss", "sampler", "none")  # class weights in the loss, weighted sampling, or neither
SYNTHESIZE_CHOICES = ("sbi",)  # self-blended fakes from every real clip
DEVICE_CHOICES = ("auto", "cpu", "cuda")
# The learning-rate schedule after the warm-up (model_creation.training.schedule), the optimiser, and the validation
# metric that picks best.pt and drives early stopping (loss is minimised, the others maximised).
SCHEDULER_CHOICES = ("cosine", "cosine-restarts", "step", "none")
OPTIMIZER_CHOICES = ("adamw", "adam", "sgd")
MONITOR_CHOICES = ("auc", "f1", "loss", "none")  # none: no choice on validation, the last epoch is kept
# What a resumed run may change; everything else must match the interrupted run.
RESUMABLE = frozenset(
    {
        "epochs",
        "patience",
        "min_delta",
        "device",
        "workers",
        "progress",
        "tensorboard",
        "keep_every_epoch",
        "calibration",
        "cache_crops",
        "max_fpr",
        "max_miss",
        "min_margin",
    }
)
# How the best checkpoint is calibrated at the end (model_creation.training.calibrate); "none" leaves it raw.
CALIBRATION_CHOICES = ("auto", "temperature", "platt", "isotonic", "none")


class TrainError(ValueError):
    """A training run that cannot start or continue; the message says why."""


def check_frames_per_clip(frames: int) -> None:
    """TrainError unless ``--frames-per-clip`` is a count of frames (also checked by a build before any work)."""
    if frames < 1:
        raise TrainError(f"--frames-per-clip must be at least 1, not {frames}.")


@dataclass
class TrainConfig:
    manifest: str
    output: str
    # more training clips (face photos, say) from manifests of the same crops: training only, never validation
    extra_train: list[str] = field(default_factory=list)
    # photo faces of --extra-train drawn afresh each epoch, each with its self-blended twin (0: all of them, always)
    photos_per_epoch: int = 0
    # a frame model: frames of each video clip an epoch, one from each of as many equal stretches of the clip
    frames_per_clip: int = 1
    degrade_photos: bool = True  # photo faces (both classes) degraded like video faces (training.degrade)
    cache_crops: bool = True  # decoded crops cached beside the clip files once (model_creation.training.crop_cache)
    sequence_length: int | None = None  # None: the manifest's window length; 1 (or frame_model): a frame model
    frame_model: bool = False  # head "frame" (no LSTM), sequence length 1: one frame per clip in training
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
    scheduler: str = "cosine"  # one of SCHEDULER_CHOICES, after the linear warm-up
    t0: int = 10  # cosine-restarts: epochs of the first cycle (torch's T_0)
    t_mult: int = 2  # cosine-restarts: each cycle this many times longer than the last (T_mult)
    step_size: int = 5  # step: epochs between two decays
    gamma: float = 0.1  # step: the factor of each decay
    optimizer: str = "adamw"  # one of OPTIMIZER_CHOICES (sgd: momentum 0.9)
    monitor: str = "auc"  # one of MONITOR_CHOICES: the validation metric (clip level) that picks best.pt
    min_delta: float = 0.0  # an epoch is better only when it improves the monitored metric by more than this
    patience: int = 5  # epochs without a better monitored metric before stopping
    val_fraction: float = 0.15
    use_manifest_split: bool = True
    folds: int = 0  # cross-validation: K folds by group (0: a single run); see model_creation.training.folds
    fold: int = 0  # which of the folds this run validates on (1..folds; 0: a single run)
    balance: str = "loss"  # one of BALANCE_CHOICES
    augment: bool = True
    reencode: bool = False  # augmentation also re-encodes (H.264/VP9/MJPEG) and downscales clips (see .reencode)
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    amp: bool = True  # mixed precision: float16 on CUDA, bfloat16 on a CPU with native bfloat16 (.precision)
    pretrained: str = "imagenet"
    init_from: str = ""  # a checkpoint whose weights start the run (fine-tuning; no optimiser state)
    synthesize_fakes: str = ""  # "" or one of SYNTHESIZE_CHOICES, in training and validation
    keep_every_epoch: bool = False
    calibration: str = "auto"  # one of CALIBRATION_CHOICES, fitted on the validation split after training
    max_fpr: float = 0.05  # the FAKE threshold: at most this share of validation real videos called FAKE
    max_miss: float = 0.10  # the REAL threshold: at most this share of validation fake videos called REAL
    min_margin: float = 0.15  # the thresholds stay at least this far from 0.5 (FAKE >= 0.65, REAL <= 0.35)
    name: str = ""
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_NAMES:
            raise TrainError(f"Unknown backbone '{self.backbone}'; choose one of {', '.join(BACKBONE_NAMES)}.")
        if self.balance not in BALANCE_CHOICES:
            raise TrainError(f"--balance must be {', '.join(BALANCE_CHOICES[:-1])} or {BALANCE_CHOICES[-1]}.")
        if self.synthesize_fakes and self.synthesize_fakes not in SYNTHESIZE_CHOICES:
            raise TrainError("--synthesize-fakes knows only sbi (self-blended images).")
        if self.calibration not in CALIBRATION_CHOICES:
            raise TrainError(f"--calibration must be one of {', '.join(CALIBRATION_CHOICES)}.")
        if not (0.0 <= self.max_fpr < 1.0 and 0.0 <= self.max_miss < 1.0 and 0.0 <= self.min_margin < 0.5):
            raise TrainError("--max-fpr and --max-miss are shares between 0 and 1, --min-margin below 0.5.")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 1 or self.workers < 0:
            raise TrainError("--epochs, --batch-size and --patience must be at least 1, --lr positive.")
        if self.sequence_length is not None and self.sequence_length < 1:
            raise TrainError("--sequence-length must be at least 1.")
        if self.val_fraction == 0.0 and self.monitor != "none" and not self.folds:
            raise TrainError("--val-fraction 0 trains on every non-test video: nothing validates, so --monitor none.")
        if self.photos_per_epoch < 0:
            raise TrainError("--photos-per-epoch must be 0 (every photo face, every epoch) or a number of faces.")
        self._check_schedule()
        self._settle_frame_model()

    def _check_schedule(self) -> None:
        """The schedule, optimiser, stopping and fold settings, each refused with what is allowed."""
        for flag, value, choices in (
            ("--scheduler", self.scheduler, SCHEDULER_CHOICES),
            ("--optimizer", self.optimizer, OPTIMIZER_CHOICES),
            ("--monitor", self.monitor, MONITOR_CHOICES),
        ):
            if value not in choices:
                raise TrainError(f"{flag} must be one of {', '.join(choices)} (not '{value}').")
        if self.warmup_epochs < 0 or self.min_delta < 0:
            raise TrainError("--warmup-epochs and --min-delta cannot be negative.")
        if self.t0 < 1 or self.t_mult < 1:
            raise TrainError("--t0 and --t-mult must be whole numbers of at least 1 (epochs; cycle growth).")
        if self.step_size < 1 or not 0.0 < self.gamma <= 1.0:
            raise TrainError("--step-size must be at least 1 epoch and --gamma between 0 (excluded) and 1.")
        if self.folds == 1 or self.folds < 0:
            raise TrainError(
                "--folds must be at least 2 (cross-validation trains one model per fold); leave it out for one run."
            )
        if not 0 <= self.fold <= self.folds:
            raise TrainError(f"Fold {self.fold} does not exist: there are {self.folds} folds.")

    def _settle_frame_model(self) -> None:
        """``--sequence-length 1`` means a frame model and a frame model means length 1; LSTM settings, and more
        than one frame of each clip for a sequence model, refused."""
        if self.sequence_length == 1:
            self.frame_model = True
        check_frames_per_clip(self.frames_per_clip)
        if not self.frame_model:
            if self.frames_per_clip != 1:
                raise TrainError(
                    "--frames-per-clip is for frame models (--frame-model): a sequence model learns from a run of "
                    "consecutive frames, not from frames one by one."
                )
            return
        if self.sequence_length not in (None, 1):
            raise TrainError(
                f"A frame model scores one frame at a time (sequence length 1); --sequence-length "
                f"{self.sequence_length} asks for an LSTM over {self.sequence_length} frames: drop one of the two."
            )
        lstm = [
            flag
            for flag, used in (
                ("--hidden-size", self.hidden_size is not None),
                ("--num-layers", self.num_layers != 1),
                ("--bidirectional", self.bidirectional),
            )
            if used
        ]
        if lstm:
            raise TrainError(f"A frame model has no LSTM: {', '.join(lstm)} cannot be used with it.")
        self.sequence_length = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_defaults() -> dict[str, Any]:
    """The default of every TrainConfig field that has one (the two paths, which have none, are left out)."""
    return {
        f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
        for f in fields(TrainConfig)
        if f.default is not MISSING or f.default_factory is not MISSING
    }


@dataclass
class TrainResult:
    output: Path
    best_path: Path | None
    last_path: Path | None
    best_epoch: int
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    calibration: dict[str, Any] | None = None  # what was fitted on the validation split, if anything
