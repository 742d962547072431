"""The classifier: a CNN turns each face crop into features, an LSTM reads them in order, a linear layer decides.

``forward`` takes ``(batch, time, 3, H, W)`` and runs the LSTM with ``batch_first=True``, so windows in a batch never
see each other's frames (the original app's LSTM read its batch axis as time). Two heads:

* ``mean``: the LSTM's outputs averaged over time, then linear: two logits per window (this project's models);
* ``legacy_last_frame``: what the original app's code computes: every frame goes through the LSTM as its own
  one-step sequence and the window is scored by its last frame. Only that frame reaches the backbone.

ImageNet weights are never downloaded: they come from torchvision's local cache or a file the caller names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torchvision
from torch import nn

from .errors import ConfigurationError
from .preprocessing import settings_from_dict

log = logging.getLogger(__name__)

BACKBONES: dict[str, int] = {"resnext50_32x4d": 2048, "mobilenet_v2": 1280}


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of a checkpoint: enough to rebuild the module its weights belong to."""

    backbone: str = "resnext50_32x4d"
    hidden_size: int = 2048
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.4
    lstm_bias: bool = True
    head: Literal["mean", "legacy_last_frame"] = "mean"
    num_classes: int = 2

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if self.head not in ("mean", "legacy_last_frame"):
            raise ValueError(f"unknown head {self.head!r}")
        if self.hidden_size < 1 or self.num_layers < 1 or self.num_classes != 2:
            raise ValueError("hidden_size and num_layers must be positive and num_classes 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def feature_size(self) -> int:
        return BACKBONES[self.backbone]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelConfig:
        return settings_from_dict(cls, data, "architecture")


def _cached_imagenet_file(backbone: str) -> Path | None:
    """torchvision's own cache file for this backbone's ImageNet weights, if some earlier download left one."""
    weights_enum = torchvision.models.get_model_weights(backbone)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in weights_enum:
        candidate = cache / os.path.basename(weights.url)
        if candidate.is_file():
            return candidate
    return None


def _backbone_trunk(backbone: str) -> nn.Sequential:
    """The backbone without its pooling and classifier, as an ``nn.Sequential``."""
    if backbone == "resnext50_32x4d":
        model = torchvision.models.resnext50_32x4d(weights=None)
        return nn.Sequential(*list(model.children())[:-2])
    model = torchvision.models.mobilenet_v2(weights=None)
    return model.features


def load_imagenet_weights(trunk: nn.Sequential, backbone: str, source: str | os.PathLike | None) -> str:
    """Initialise ``trunk`` from ImageNet weights; returns where they came from ("random" when none were found).

    ``source`` is "imagenet" (torchvision's cache), a path to a torchvision state dict file, "random", or None when
    the caller loads a checkpoint's weights next.
    """
    if source is None:  # weights come from a checkpoint right after: nothing to say
        return "none"
    if source in ("random", "none"):
        log.info("Backbone %s: random initialisation (no pretrained weights requested).", backbone)
        return "random"
    path = _cached_imagenet_file(backbone) if source == "imagenet" else Path(source)
    if path is None:
        log.warning(
            "Backbone %s: no ImageNet weights in torchvision's cache (%s); using random initialisation. "
            "Pass a weights file to use pretrained weights.",
            backbone,
            Path(torch.hub.get_dir()) / "checkpoints",
        )
        return "random"
    if not path.is_file():
        raise ConfigurationError(f"Pretrained weights file '{path}' does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if backbone == "resnext50_32x4d":
        # torchvision keys: conv1, bn1, layer1..4 -> trunk indices 0, 1, 4..7 (relu and maxpool hold no weights)
        rename = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
        prefix_of = lambda key: key.split(".", 1)  # noqa: E731
        mapped = {}
        for key, value in state.items():
            head, rest = prefix_of(key)
            if head in rename:
                mapped[f"{rename[head]}.{rest}"] = value
    else:
        mapped = {key[len("features.") :]: value for key, value in state.items() if key.startswith("features.")}
    missing, unexpected = trunk.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ConfigurationError(
            f"'{path}' does not hold {backbone} weights ({len(missing)} missing, {len(unexpected)} unexpected keys)."
        )
    log.info("Backbone %s: ImageNet weights from %s.", backbone, path)
    return str(path)


class DeepfakeDetector(nn.Module):
    """Backbone -> per-frame features -> LSTM (batch_first) -> head -> two logits."""

    def __init__(self, config: ModelConfig, pretrained: str | os.PathLike | None = None):
        super().__init__()
        self.config = config
        self.channels_last = False
        self.backbone = _backbone_trunk(config.backbone)
        self.pretrained_from = load_imagenet_weights(self.backbone, config.backbone, pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.lstm = nn.LSTM(
            config.feature_size,
            config.hidden_size,
            num_layers=config.num_layers,
            bias=config.lstm_bias,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        self.dropout = nn.Dropout(config.dropout)
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
        outputs, _ = self.lstm(features)
        pooled = outputs.mean(dim=1) if self.config.head == "mean" else outputs[:, -1]
        return self.classifier(self.dropout(pooled))
