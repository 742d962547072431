"""What ``train_model`` works out before a run: whether ``--resume FILE`` names a checkpoint (fine-tuning) or a
training state, the architecture a fine-tuning run takes from its checkpoint, and the sequence length a run uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import TrainConfig, TrainError
from .train_state import STATE_FILE


def is_checkpoint_file(path: str) -> bool:
    """Whether ``--resume FILE`` names a checkpoint of this project (fine-tuning) rather than a training state."""
    from ml_app.detection.checkpoints import FORMAT, read_checkpoint_file
    from ml_app.detection.errors import DetectionError

    if not path or not Path(path).is_file() or Path(path).name == STATE_FILE:
        return False
    try:
        payload, _ = read_checkpoint_file(path)
    except DetectionError:
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def architecture_of(path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig values that rebuild a checkpoint's architecture, and ``init_from``: a run that fine-tunes it.
    Flags the user gave win; LSTM settings are left out for a frame model (it has none)."""
    from ml_app.detection.checkpoints import load_checkpoint
    from ml_app.detection.errors import DetectionError

    try:
        architecture = load_checkpoint(path).architecture
    except DetectionError as exc:
        raise TrainError(exc.message) from exc
    values: dict[str, Any] = {
        "backbone": architecture.backbone,
        "dropout": architecture.dropout,
        "init_from": str(path),
    }
    frame_model = given.get("frame_model", architecture.is_frame_model) or given.get("sequence_length") == 1
    if frame_model:
        values["frame_model"] = True
    else:
        values.update(
            hidden_size=architecture.hidden_size,
            num_layers=architecture.num_layers,
            bidirectional=architecture.bidirectional,
        )
    return values


def trainer_length(config: TrainConfig) -> int:
    """The sequence length a run will use when none was given: the manifest's."""
    from .manifest import load_manifest

    return config.sequence_length or load_manifest(config.manifest).sequence_length


def is_trunk_source(pretrained: str | None) -> bool:
    """Whether ``--pretrained`` names a checkpoint of this project (its trunk is taken) rather than weights."""
    return pretrained not in (None, "", "imagenet", "random", "none") and is_checkpoint_file(str(pretrained))
