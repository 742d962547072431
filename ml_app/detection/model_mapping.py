"""Which checkpoint analyses which sequence length.

``MODEL_MAPPING`` (a setting, ``{frames: path}``) names checkpoints explicitly; lengths it does not name are looked up
in the models folder, where every valid checkpoint announces its own sequence length. Among several for one length the
trained one with the best reported accuracy wins, as in the original app, which picked by the accuracy in the name.
Summaries read only the small metadata record of a file (tensors are memory-mapped, not read), so scanning a folder of
large checkpoints is quick.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import checkpoint_from_payload, read_checkpoint_file
from .errors import CheckpointError, NoCheckpointForLength

log = logging.getLogger(__name__)

SUPPORTED_LENGTHS = (10, 20, 40, 60, 80, 100)


@dataclass(frozen=True)
class CheckpointSummary:
    path: Path
    name: str
    sequence_length: int
    backbone: str
    accuracy: float | None
    untrained: bool


def summarize_checkpoint(path: str | os.PathLike) -> CheckpointSummary:
    """Metadata of a checkpoint without reading its weights; raises CheckpointError like ``load_checkpoint``."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        payload, _ = read_checkpoint_file(path)
    checkpoint = checkpoint_from_payload(payload, path.name)
    return CheckpointSummary(
        path=path,
        name=checkpoint.name,
        sequence_length=checkpoint.sequence_length,
        backbone=checkpoint.architecture.backbone,
        accuracy=checkpoint.accuracy,
        untrained=checkpoint.untrained,
    )


def discover_checkpoints(models_dir: str | os.PathLike) -> tuple[list[CheckpointSummary], dict[Path, str]]:
    """Valid checkpoints in a folder, and the files skipped with the reason for each."""
    found: list[CheckpointSummary] = []
    skipped: dict[Path, str] = {}
    folder = Path(models_dir)
    if not folder.is_dir():
        return found, skipped
    for path in sorted(folder.glob("*.pt")):
        try:
            found.append(summarize_checkpoint(path))
        except CheckpointError as exc:
            skipped[path] = exc.message
            log.info("Skipping %s: %s", path, exc.message)
    return found, skipped


def _preference(summary: CheckpointSummary) -> tuple:
    return (not summary.untrained, summary.accuracy or 0.0, summary.path.stat().st_mtime)


def _absolute(path: str | os.PathLike, base_dir: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else base_dir / path


def effective_mapping(
    mapping: Mapping[int | str, str] | None, models_dir: str | os.PathLike, base_dir: str | os.PathLike
) -> dict[int, Path]:
    """MODEL_MAPPING's entries, completed with the best checkpoint found in the models folder for other lengths."""
    base = Path(base_dir)
    result: dict[int, Path] = {int(length): _absolute(path, base) for length, path in (mapping or {}).items()}
    found, _ = discover_checkpoints(models_dir)
    best: dict[int, CheckpointSummary] = {}
    for summary in found:
        current = best.get(summary.sequence_length)
        if current is None or _preference(summary) > _preference(current):
            best[summary.sequence_length] = summary
    for length, summary in best.items():
        result.setdefault(length, summary.path)
    return dict(sorted(result.items()))


def how_to_get_checkpoint(sequence_length: int) -> str:
    return (
        f"To get a checkpoint for {sequence_length} frames: convert one of the original app's files with "
        f"'python manage.py import_checkpoint model_<acc>_acc_{sequence_length}_frames_<...>.pt', or make an "
        f"untrained one to try the pipeline with 'python manage.py create_checkpoint --sequence-length "
        f"{sequence_length}'; either lands in the models folder and is found there. Or name a file with "
        "--checkpoint FILE, or map it in the MODEL_MAPPING setting."
    )


def resolve_checkpoint(
    sequence_length: int,
    mapping: Mapping[int | str, str] | None,
    models_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
) -> Path:
    """The checkpoint file for ``sequence_length``, or NoCheckpointForLength saying exactly how to get one."""
    explicit = {int(length): path for length, path in (mapping or {}).items()}
    if sequence_length in explicit:
        path = _absolute(explicit[sequence_length], Path(base_dir))
        if not path.is_file():
            raise NoCheckpointForLength(
                f"MODEL_MAPPING names '{path}' for {sequence_length} frames, but that file does not exist. "
                + how_to_get_checkpoint(sequence_length)
            )
        return path
    available = effective_mapping(mapping, models_dir, base_dir)
    if sequence_length in available:
        return available[sequence_length]
    lengths = ", ".join(str(n) for n in available) or "none"
    raise NoCheckpointForLength(
        f"No checkpoint for {sequence_length}-frame sequences (available: {lengths}). "
        + how_to_get_checkpoint(sequence_length)
    )
