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
# What a resumed run may change; everything else must match the interrupted run.
RESUMABLE = frozenset(
    {
        "epochs",
        "patience",
        "device",
        "workers",
        "progress",
        "tensorboard",
        "keep_every_epoch",
        "calibration",
        "max_fpr",
        "max_miss",
        "min_margin",
    }
)
# How the best checkpoint is calibrated at the end (model_creation.training.calibrate); "none" leaves it raw.
CALIBRATION_CHOICES = ("auto", "temperature", "platt", "isotonic", "none")


class TrainError(ValueError):
    """A training run that cannot start or continue; the message says why."""


@dataclass
class TrainConfig:
    manifest: str
    output: str
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
    patience: int = 5  # epochs without a better validation AUC before stopping
    val_fraction: float = 0.15
    use_manifest_split: bool = True
    balance: str = "loss"  # one of BALANCE_CHOICES
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    amp: bool = True  # mixed precision, CUDA only
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
        self._settle_frame_model()

    def _settle_frame_model(self) -> None:
        """``--sequence-length 1`` means a frame model and a frame model means length 1; LSTM settings refused."""
        if self.sequence_length == 1:
            self.frame_model = True
        if not self.frame_model:
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
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


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
