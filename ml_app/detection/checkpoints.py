"""One file per model: format version, architecture, every preprocessing setting, sequence length, training summary,
metrics and weights.

Everything in the file is a plain container, a number, a string or a tensor, so it saves and loads with
``weights_only=True``: loading an uploaded file never runs code. Loading reports *why* a file is not usable (missing,
empty, a web page, truncated, an unsafe pickle, the original app's bare state dict, a newer format, weights that do
not fit the architecture) through the exceptions in :mod:`ml_app.detection.errors`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .calibration import Calibration
from .defaults import FRAME_MODEL_LENGTH, window_frames
from .errors import (
    ArchitectureMismatch,
    CheckpointNotFound,
    ConfigurationError,
    HtmlNotCheckpoint,
    LegacyStateDict,
    NotACheckpoint,
    TruncatedCheckpoint,
    UnsafeCheckpoint,
    UnsupportedCheckpointVersion,
)
from .files import atomic_write, file_sha256
from .network import DeepfakeDetector, ModelConfig
from .preprocessing import Preprocessing

FORMAT = "deepfake-detector-checkpoint"
FORMAT_VERSION = 1

_LEGACY_KEYS = ("model.0.weight", "lstm.weight_ih_l0", "linear1.weight")


@dataclass
class CheckpointFile:
    """A checkpoint in memory. ``path`` and ``sha256`` identify the file it was loaded from or saved to."""

    architecture: ModelConfig
    preprocessing: Preprocessing
    sequence_length: int
    state_dict: dict[str, torch.Tensor]
    name: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None  # None: scores are the raw network output
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    path: Path | None = None
    sha256: str | None = None

    @property
    def untrained(self) -> bool:
        return bool(self.training.get("untrained"))

    @property
    def window_length(self) -> int:
        """Frames per window when this checkpoint analyses a video: its sequence length, or for a frame model of
        length 1 (a photo model) ``FRAME_MODEL_WINDOW`` frames. A frame head averages its frames' probabilities
        (network.py's ``frame`` head), so a frame model may also declare a longer window: it then analyses videos in
        windows of that many frames, each scored alone, and is mapped under that length like a sequence model."""
        return window_frames(self.sequence_length)

    @property
    def accuracy(self) -> float | None:
        value = self.metrics.get("accuracy")
        return float(value) if value is not None else None

    def to_payload(self, half: bool = False) -> dict[str, Any]:
        weights = {
            key: (value.half() if half and value.is_floating_point() else value).detach().cpu().contiguous()
            for key, value in self.state_dict.items()
        }
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created_at": self.created_at,
            "sequence_length": int(self.sequence_length),
            "architecture": self.architecture.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "training": self.training,
            "metrics": self.metrics,
            "origin": self.origin,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "weights_dtype": "float16" if half else "float32",
            "state_dict": weights,
        }

    def calibration_summary(self) -> dict[str, Any] | None:
        """The calibration without the scores it was fitted on (what results and listings carry)."""
        if self.calibration is None:
            return None
        return {**self.calibration.to_dict(), "fitted_on": self.calibration.fitted_on_summary()}

    def describe(self) -> dict[str, Any]:
        """Identity and settings, without weights: what results and listings show."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "sequence_length": self.sequence_length,
            "architecture": self.architecture.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
            "metrics": self.metrics,
            "training": self.training,
            "origin": self.origin,
            "calibration": self.calibration_summary(),
            "untrained": self.untrained,
            "created_at": self.created_at,
        }


def save_checkpoint(checkpoint: CheckpointFile, path: str | os.PathLike, half: bool = False) -> str:
    """Write atomically (a reader never sees half a file); returns the file's sha256. ``half`` stores float16."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not checkpoint.name:
        checkpoint.name = path.stem
    payload = checkpoint.to_payload(half=half)
    atomic_write(path, lambda temporary: torch.save(payload, temporary))
    checkpoint.path = path
    checkpoint.sha256 = file_sha256(path)
    return checkpoint.sha256


def _safe_load(data: bytes, name: str) -> Any:
    """``torch.load(weights_only=True)`` with each failure turned into a specific, readable error."""
    stripped = data[:512].lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        raise HtmlNotCheckpoint(
            f"'{name}' is an HTML page, not a checkpoint: the download link probably returned a web page "
            "(dead, private or password-protected link). Download the file itself."
        )
    is_zip = data[:4] == b"PK\x03\x04"
    if is_zip and not zipfile.is_zipfile(io.BytesIO(data)):
        raise TruncatedCheckpoint(f"'{name}' is truncated: its zip archive has no end (an incomplete download?).")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:
            culprit = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), "")
            raise UnsafeCheckpoint(
                f"'{name}' was refused without running it: it contains Python objects beyond tensors and plain "
                f"containers, which could run code when loaded. {culprit}".strip()
            ) from exc
        if "truncated" in text.lower():
            raise TruncatedCheckpoint(f"'{name}' is truncated (an incomplete download?).") from exc
        detail = next((line.strip() for line in text.splitlines() if "Unsupported" in line), "unreadable pickle")
        raise NotACheckpoint(f"'{name}' is not a PyTorch checkpoint ({detail}).") from exc
    except (EOFError, zipfile.BadZipFile) as exc:
        raise TruncatedCheckpoint(f"'{name}' is truncated (an incomplete download?).") from exc
    except RuntimeError as exc:
        text = str(exc)
        if is_zip or "zip archive" in text or "central directory" in text:
            raise TruncatedCheckpoint(f"'{name}' is damaged or truncated: {text.splitlines()[0]}") from exc
        raise NotACheckpoint(f"'{name}' is not a PyTorch checkpoint ({text.splitlines()[0]}).") from exc
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise NotACheckpoint(f"'{name}' is not a PyTorch checkpoint ({type(exc).__name__}: {exc}).") from exc


def looks_like_legacy_state_dict(payload: Any) -> bool:
    """True for the original ResNeXt+LSTM app's bare state dicts (also when saved from DataParallel)."""
    if not isinstance(payload, dict):
        return False
    keys = {key[len("module.") :] if isinstance(key, str) and key.startswith("module.") else key for key in payload}
    return all(key in keys for key in _LEGACY_KEYS)


def read_checkpoint_file(path: str | os.PathLike) -> tuple[Any, str]:
    """The safely loaded payload of any .pt file and its sha256."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f"Checkpoint '{path}' does not exist.")
    data = path.read_bytes()
    if not data:
        raise NotACheckpoint(f"'{path.name}' is empty (0 bytes), not a checkpoint.")
    payload = _safe_load(data, path.name)
    return payload, hashlib.sha256(data).hexdigest()


def checkpoint_from_payload(payload: Any, name: str) -> CheckpointFile:
    """Validate a loaded payload's structure and settings (not yet its weights)."""
    if looks_like_legacy_state_dict(payload):
        raise LegacyStateDict(
            f"'{name}' is a bare state dict from the original ResNeXt+LSTM app. Convert it first: "
            f"python manage.py import_checkpoint {name}"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        kind = type(payload).__name__
        raise NotACheckpoint(
            f"'{name}' is a PyTorch file but not a checkpoint of this project (it holds a {kind} without our format "
            "marker). Checkpoints come from train_model, import_checkpoint or create_checkpoint."
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UnsupportedCheckpointVersion(
            f"'{name}' uses checkpoint format version {version}; this version of the app reads up to "
            f"{FORMAT_VERSION}. Upgrade the app to load it."
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NotACheckpoint(f"'{name}' has no weights (its state_dict is missing or holds non-tensors).")
    try:
        architecture = ModelConfig.from_dict(payload.get("architecture"))
        preprocessing = Preprocessing.from_dict(payload.get("preprocessing"))
    except ConfigurationError as exc:
        raise NotACheckpoint(f"'{name}' has invalid settings: {exc.message}") from exc
    length = payload.get("sequence_length")
    if not isinstance(length, int) or length < 1:
        raise NotACheckpoint(f"'{name}' has no valid sequence length ({length!r}).")
    if length == FRAME_MODEL_LENGTH and not architecture.is_frame_model:
        raise NotACheckpoint(
            f"'{name}' is inconsistent: sequence length 1 is a frame model's (head 'frame'), and its head is "
            f"{architecture.head!r}."
        )
    try:
        calibration = Calibration.from_dict(payload.get("calibration"))
    except ValueError as exc:
        raise NotACheckpoint(f"'{name}' has an invalid calibration: {exc}") from exc
    return CheckpointFile(
        architecture=architecture,
        preprocessing=preprocessing,
        sequence_length=length,
        state_dict=state,
        name=str(payload.get("name") or name),
        training=dict(payload.get("training") or {}),
        metrics=dict(payload.get("metrics") or {}),
        origin=dict(payload.get("origin") or {}),
        calibration=calibration,
        created_at=str(payload.get("created_at") or ""),
    )


def load_checkpoint(path: str | os.PathLike) -> CheckpointFile:
    """Load and validate a checkpoint file (weights included; see :func:`build_model` for the architecture check)."""
    path = Path(path)
    payload, digest = read_checkpoint_file(path)
    checkpoint = checkpoint_from_payload(payload, path.name)
    checkpoint.state_dict = {
        key: value.float() if value.is_floating_point() else value for key, value in checkpoint.state_dict.items()
    }
    checkpoint.path = path
    checkpoint.sha256 = digest
    return checkpoint


def build_model(checkpoint: CheckpointFile) -> DeepfakeDetector:
    """The checkpoint's architecture with its weights, in eval mode; ArchitectureMismatch if they do not fit."""
    with torch.device("meta"):  # no random initialisation of weights that are overwritten at once
        model = DeepfakeDetector(checkpoint.architecture, pretrained=None)
    try:
        model.load_state_dict(checkpoint.state_dict, strict=True, assign=True)
    except RuntimeError as exc:
        expected = model.state_dict()
        given = checkpoint.state_dict
        missing = sorted(set(expected) - set(given))
        unexpected = sorted(set(given) - set(expected))
        shapes = [
            f"{key} {tuple(given[key].shape)} vs {tuple(expected[key].shape)}"
            for key in sorted(set(expected) & set(given))
            if tuple(given[key].shape) != tuple(expected[key].shape)
        ]
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing weights (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} with the wrong shape (e.g. {'; '.join(shapes[:2])})")
        raise ArchitectureMismatch(
            f"The weights in '{checkpoint.name}' do not fit its declared architecture "
            f"({checkpoint.architecture.backbone}, hidden {checkpoint.architecture.hidden_size}): "
            + ("; ".join(parts) or str(exc).splitlines()[0])
            + "."
        ) from exc
    return model.eval()


def new_checkpoint(
    architecture: ModelConfig,
    preprocessing: Preprocessing,
    sequence_length: int,
    model: DeepfakeDetector | None = None,
    **details: Any,
) -> CheckpointFile:
    """A checkpoint of ``model`` (or of a freshly initialised one, marked untrained)."""
    training = dict(details.pop("training", {}) or {})
    pretrained = details.pop("pretrained", "random")
    if model is None:
        model = DeepfakeDetector(architecture, pretrained=pretrained)
        training.setdefault("untrained", True)
        training.setdefault("backbone_init", model.pretrained_from)
    return CheckpointFile(
        architecture=architecture,
        preprocessing=preprocessing,
        sequence_length=sequence_length,
        state_dict={key: value.detach().clone() for key, value in model.state_dict().items()},
        training=training,
        **details,
    )
