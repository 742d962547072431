"""Loading a checkpoint for analysis, once per process: the network on its device and the face detector it was
trained with.

A worker analyses many videos with the same few checkpoints, so loaded models are kept in a per-process cache keyed
by path, size, modification time and device; a file that changes on disk is loaded again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from .checkpoints import CheckpointFile, build_model, load_checkpoint
from .errors import ConfigurationError
from .faces import FaceDetector, build_detector
from .network import use_fast_layout
from .onnx_backbone import scoring_network

log = logging.getLogger(__name__)


class ScoringNetwork(Protocol):
    """What scoring needs of a network: clips ``(batch, time, 3, H, W)`` in, logits ``(batch, 2)`` out.

    ``DeepfakeDetector`` (a ``.pt`` checkpoint) and ``OnnxModel`` (an ``export_onnx`` file) both are one.
    """

    def __call__(self, clips: torch.Tensor) -> torch.Tensor: ...


@dataclass
class LoadedModel:
    """A checkpoint ready to analyse: network in eval mode on its device, and the face detector it was trained with."""

    checkpoint: CheckpointFile
    model: ScoringNetwork
    detector: FaceDetector
    device: torch.device
    load_seconds: float = 0.0
    scorer: ScoringNetwork | None = None  # what scores without gradients, when faster than ``model`` itself

    @property
    def scoring(self) -> ScoringNetwork:
        """The network that scores (``model`` itself, or its onnxruntime backbone on the CPU); heat maps and
        anything else that needs gradients use ``model``."""
        return self.scorer if self.scorer is not None else self.model

    @property
    def sequence_length(self) -> int:
        return self.checkpoint.sequence_length


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` is CUDA when there is a GPU, else the CPU; asking for CUDA without one is a ConfigurationError."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("CUDA was asked for but no CUDA device is available; use --device cpu.")
    return device


_CacheKey = tuple[str, int | None, int | None, str, bool]
_cache: dict[_CacheKey, LoadedModel] = {}
_cache_lock = threading.Lock()


def _cache_key(path: Path, device: torch.device, onnx_backbone: bool = True) -> _CacheKey:
    try:
        stat = path.stat()
        return (str(path), stat.st_mtime_ns, stat.st_size, str(device), onnx_backbone)
    except FileNotFoundError:
        return (str(path), None, None, str(device), onnx_backbone)


def is_model_cached(path: str | os.PathLike, device: str | torch.device | None = "auto") -> bool:
    """Whether ``load_detector_model`` would reuse a model already in this process."""
    with _cache_lock:
        return _cache_key(Path(path).resolve(), resolve_device(device)) in _cache


def _load(
    path: Path, device: torch.device, onnx_backbone: bool
) -> tuple[CheckpointFile, ScoringNetwork, torch.device, ScoringNetwork | None]:
    if path.suffix.lower() == ".onnx":  # from manage.py export_onnx: onnxruntime on the CPU, settings inside
        from .onnx_model import load_onnx_checkpoint

        checkpoint, onnx_model = load_onnx_checkpoint(path)
        return checkpoint, onnx_model, torch.device("cpu"), None
    checkpoint = load_checkpoint(path)
    network = use_fast_layout(build_model(checkpoint).to(device), device)
    checkpoint.state_dict = {}  # the weights now live in the model
    scorer = None
    if onnx_backbone:
        scorer = scoring_network(network, checkpoint.preprocessing.image_size, checkpoint.sha256, device)
    return checkpoint, network, device, scorer


def load_detector_model(
    path: str | os.PathLike, device: str | torch.device | None = "auto", onnx_backbone: bool = True
) -> LoadedModel:
    """Load a checkpoint once per process and reuse it; a changed file (size or mtime) is loaded again.
    ``onnx_backbone=False`` scores with PyTorch's backbone on the CPU too (for comparing the two)."""
    path = Path(path).resolve()
    wanted = resolve_device(device)
    key = _cache_key(path, wanted, onnx_backbone)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        started = time.perf_counter()
        checkpoint, network, on, scorer = _load(path, wanted, onnx_backbone)
        detector = build_detector(checkpoint.preprocessing.detector)
        loaded = LoadedModel(checkpoint, network, detector, on, time.perf_counter() - started, scorer)
        for old in [k for k in _cache if k[0] == key[0]]:
            del _cache[old]
        _cache[key] = loaded
        log.info("Loaded checkpoint %s (%s) in %.2f s", checkpoint.name, checkpoint.sha256, loaded.load_seconds)
        return loaded
