"""The classifier: a CNN turns each face crop into features, an LSTM reads them in order, a linear layer decides.

``forward`` takes ``(batch, time, 3, H, W)`` and runs the LSTM with ``batch_first=True``, so windows in a batch never
see each other's frames (the original app's LSTM read its batch axis as time). Two heads:

* ``mean``: the LSTM's outputs averaged over time, then linear: two logits per window (this project's models);
* ``legacy_last_frame``: what the original app's code computes: every frame goes through the LSTM as its own
  one-step sequence and the window is scored by its last frame. Only that frame reaches the backbone;
* ``frame``: no LSTM: each frame's pooled features go straight to the linear layer (a *frame model*, sequence
  length 1, for photos). Given several frames it returns the logarithm of the mean of the frames' class
  probabilities, so a softmax downstream yields the window's mean probability and one checkpoint scores a photo, a
  frame or a whole window of video alike (for one frame this is the log-softmax, which trains exactly as the logits).

The backbones live in one table, ``BACKBONE_TABLE``: per CNN its trunk, its feature size and how torchvision's
ImageNet keys map onto the trunk. Validation, the LSTM's input size, weight loading and every command's
``--backbone`` choices read it, so adding a backbone is one entry. ImageNet weights are never downloaded: they come
from torchvision's local cache or a file the caller names.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from torch import nn

from .errors import ConfigurationError
from .preprocessing import settings_from_dict

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


def _resnext50_trunk() -> nn.Sequential:
    return nn.Sequential(*list(torchvision.models.resnext50_32x4d(weights=None).children())[:-2])


def _resnext50_keys(state: StateDict) -> StateDict:
    """torchvision keys conv1, bn1, layer1..4 -> trunk indices 0, 1, 4..7 (relu and maxpool hold no weights)."""
    rename = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in rename:
            mapped[f"{rename[head]}.{rest}"] = value
    return mapped


def _mobilenet_v2_trunk() -> nn.Sequential:
    return torchvision.models.mobilenet_v2(weights=None).features


def _mobilenet_v2_keys(state: StateDict) -> StateDict:
    """torchvision keys ``features.N...`` -> trunk keys ``N...`` (the classifier is dropped)."""
    return {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}


@dataclass(frozen=True)
class Backbone:
    """One entry of the backbone table: everything the project knows about a CNN it can put before the LSTM.

    ``name`` is torchvision's model name (its ImageNet weights are looked up in torchvision's cache under it);
    ``trunk`` builds the network without its pooling and classifier, randomly initialised, and its output has
    ``feature_size`` channels; ``imagenet_keys`` turns a torchvision ImageNet state dict of the whole model into the
    trunk's keys.
    """

    name: str
    feature_size: int
    trunk: Callable[[], nn.Sequential]
    imagenet_keys: Callable[[StateDict], StateDict]


BACKBONE_TABLE: dict[str, Backbone] = {
    entry.name: entry
    for entry in (
        Backbone("resnext50_32x4d", 2048, _resnext50_trunk, _resnext50_keys),
        Backbone("mobilenet_v2", 1280, _mobilenet_v2_trunk, _mobilenet_v2_keys),
    )
}
# The backbone names, in the table's order: what command-line flags offer as choices.
BACKBONE_NAMES: tuple[str, ...] = tuple(BACKBONE_TABLE)
# Feature size per backbone, derived from the table (ml_app's create_checkpoint command reads this name).
BACKBONES: dict[str, int] = {name: entry.feature_size for name, entry in BACKBONE_TABLE.items()}


def get_backbone(name: str) -> Backbone:
    """The table's entry for ``name``; ValueError naming the choices when there is none."""
    try:
        return BACKBONE_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONE_NAMES)}") from None


HEADS = ("mean", "legacy_last_frame", "frame")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of a checkpoint: enough to rebuild the module its weights belong to."""

    backbone: str = "resnext50_32x4d"
    hidden_size: int = 2048
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.4
    lstm_bias: bool = True
    head: Literal["mean", "legacy_last_frame", "frame"] = "mean"
    num_classes: int = 2

    def __post_init__(self) -> None:
        get_backbone(self.backbone)  # ValueError for a name the table does not hold
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}")
        if self.hidden_size < 1 or self.num_layers < 1 or self.num_classes != 2:
            raise ValueError("hidden_size and num_layers must be positive and num_classes 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def feature_size(self) -> int:
        return get_backbone(self.backbone).feature_size

    @property
    def is_frame_model(self) -> bool:
        """Scores single frames (no LSTM): the model for photos, and for videos frame by frame."""
        return self.head == "frame"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelConfig:
        return settings_from_dict(cls, data, "architecture")


def _cached_imagenet_file(name: str) -> Path | None:
    """torchvision's own cache file for this backbone's ImageNet weights, if some earlier download left one."""
    weights_enum = torchvision.models.get_model_weights(name)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in weights_enum:
        candidate = cache / os.path.basename(weights.url)
        if candidate.is_file():
            return candidate
    return None


def load_imagenet_weights(trunk: nn.Sequential, name: str, source: str | os.PathLike | None) -> str:
    """Initialise ``trunk`` from ImageNet weights; returns where they came from ("random" when none were found).

    ``source`` is "imagenet" (torchvision's cache), a path to a torchvision state dict file, "random", or None when
    the caller loads a checkpoint's weights next.
    """
    if source is None:  # weights come from a checkpoint right after: nothing to say
        return "none"
    if source in ("random", "none"):
        log.info("Backbone %s: random initialisation (no pretrained weights requested).", name)
        return "random"
    path = _cached_imagenet_file(name) if source == "imagenet" else Path(source)
    if path is None:
        log.warning(
            "Backbone %s: no ImageNet weights in torchvision's cache (%s); using random initialisation. "
            "Pass a weights file to use pretrained weights.",
            name,
            Path(torch.hub.get_dir()) / "checkpoints",
        )
        return "random"
    if not path.is_file():
        raise ConfigurationError(f"Pretrained weights file '{path}' does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = get_backbone(name).imagenet_keys(state)
    missing, unexpected = trunk.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ConfigurationError(
            f"'{path}' does not hold {name} weights ({len(missing)} missing, {len(unexpected)} unexpected keys)."
        )
    log.info("Backbone %s: ImageNet weights from %s.", name, path)
    return str(path)


class DeepfakeDetector(nn.Module):
    """Backbone -> per-frame features -> LSTM (batch_first) -> head -> two logits."""

    def __init__(self, config: ModelConfig, pretrained: str | os.PathLike | None = None):
        super().__init__()
        self.config = config
        self.channels_last = False
        self.backbone = get_backbone(config.backbone).trunk()
        self.pretrained_from = load_imagenet_weights(self.backbone, config.backbone, pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm: nn.LSTM | None = None
        if config.is_frame_model:  # pooled features -> linear
            self.classifier = nn.Linear(config.feature_size, config.num_classes)
            return
        self.lstm = nn.LSTM(
            config.feature_size,
            config.hidden_size,
            num_layers=config.num_layers,
            bias=config.lstm_bias,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        directions = 2 if config.bidirectional else 1
        self.classifier = nn.Linear(config.hidden_size * directions, config.num_classes)

    def use_channels_last(self) -> DeepfakeDetector:
        """NHWC convolutions: about twice as fast for inference on CPU (see bench/)."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` -> ``(n, features)``."""
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.pool(self.backbone(frames)).flatten(1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """``(batch, time, 3, H, W)`` -> logits ``(batch, 2)``."""
        if clips.dim() != 5:
            raise ValueError(f"expected (batch, time, 3, H, W), got shape {tuple(clips.shape)}")
        if self.config.head == "legacy_last_frame":
            clips = clips[:, -1:]
        batch, steps = clips.shape[:2]
        features = self.frame_features(clips.flatten(0, 1)).view(batch, steps, -1)
        if self.lstm is None:  # a frame model: log of the frames' mean probabilities (see the module's docstring)
            per_frame = torch.log_softmax(self.classifier(self.dropout(features)).float(), dim=-1)
            return torch.logsumexp(per_frame, dim=1) - math.log(steps)
        outputs, _ = self.lstm(features)
        pooled = outputs.mean(dim=1) if self.config.head == "mean" else outputs[:, -1]
        return self.classifier(self.dropout(pooled))
