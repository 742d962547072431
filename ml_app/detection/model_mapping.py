"""Which checkpoint analyses which sequence length, without a database.

``MODEL_MAPPING`` (a setting, ``{frames: path}``) names checkpoints explicitly; lengths it does not name are looked up
in the models folder, where every valid checkpoint announces its own sequence length. Among several for one length
the preference order below decides (the registry's sync uses the same order to pick what becomes active). Summaries
read only the small metadata record of a file (tensors are memory-mapped, not read), so scanning a folder of large
checkpoints is quick.

Where a database with the checkpoint registry exists, its active checkpoint decides instead: see
``ml_app.checkpoint_lookup.choose_checkpoint``, the one place that combines the two.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .defaults import FRAME_MODEL_LENGTH, SHIPPED_PHOTO_FILE
from .errors import CheckpointError, NoCheckpointForLength

log = logging.getLogger(__name__)

# How the preferred checkpoint for a length is chosen among several, in words (for messages and reasons).
PREFERENCE_ORDER = "trained first, then highest reported accuracy, then newest"


@dataclass(frozen=True)
class CheckpointSummary:
    path: Path
    name: str
    sequence_length: int
    backbone: str
    accuracy: float | None
    untrained: bool


class CheckpointChoice(NamedTuple):
    """The file that analyses a sequence length, where the choice came from (``registry``, ``mapping``,
    ``models_dir`` or ``option``) and why, in words."""

    path: Path
    source: str
    reason: str


def summarize_checkpoint(path: str | os.PathLike) -> CheckpointSummary:
    """Metadata of a checkpoint without reading its weights; raises CheckpointError like ``load_checkpoint``."""
    import torch  # here, not at the top: choosing among known files (the registry's sync) needs no torch

    from .checkpoints import checkpoint_from_payload, read_checkpoint_file

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


def checkpoint_files(models_dir: str | os.PathLike) -> list[Path]:
    """The files in the models folder that may be checkpoints (``*.pt``), in name order."""
    folder = Path(models_dir)
    return sorted(folder.glob("*.pt")) if folder.is_dir() else []


def discover_checkpoints(models_dir: str | os.PathLike) -> tuple[list[CheckpointSummary], dict[Path, str]]:
    """Valid checkpoints in a folder, and the files skipped with the reason for each."""
    found: list[CheckpointSummary] = []
    skipped: dict[Path, str] = {}
    for path in checkpoint_files(models_dir):
        try:
            found.append(summarize_checkpoint(path))
        except CheckpointError as exc:
            skipped[path] = exc.message
            log.info("Skipping %s: %s", path, exc.message)
    return found, skipped


def preference(summary: CheckpointSummary) -> tuple:
    """The sort key of the one preference order (larger is better): trained, then accuracy, then newest file."""
    try:
        modified = summary.path.stat().st_mtime
    except OSError:
        modified = 0.0
    return (not summary.untrained, summary.accuracy or 0.0, modified)


def best_first(summaries: Iterable[CheckpointSummary]) -> list[CheckpointSummary]:
    """``summaries`` in preference order, the preferred one first."""
    return sorted(summaries, key=preference, reverse=True)


def _absolute(path: str | os.PathLike, base_dir: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else base_dir / path


def _shown(path: Path, base_dir: Path) -> str:
    """A folder as people see it: relative to the project where it is inside, absolute otherwise."""
    try:
        return f"{path.resolve().relative_to(base_dir.resolve())}/"
    except ValueError:
        return f"{path}/"


def _best_in_folder(models_dir: str | os.PathLike) -> dict[int, tuple[CheckpointSummary, int]]:
    """The preferred checkpoint per length in the folder, and how many there were for that length."""
    found, _ = discover_checkpoints(models_dir)
    by_length: dict[int, list[CheckpointSummary]] = {}
    for summary in found:
        by_length.setdefault(summary.sequence_length, []).append(summary)
    return {length: (best_first(group)[0], len(group)) for length, group in by_length.items()}


def effective_mapping(
    mapping: Mapping[int | str, str] | None, models_dir: str | os.PathLike, base_dir: str | os.PathLike
) -> dict[int, Path]:
    """MODEL_MAPPING's entries, completed with the best checkpoint found in the models folder for other lengths."""
    base = Path(base_dir)
    result: dict[int, Path] = {int(length): _absolute(path, base) for length, path in (mapping or {}).items()}
    for length, (summary, _) in _best_in_folder(models_dir).items():
        result.setdefault(length, summary.path)
    return dict(sorted(result.items()))


EnsembleMember = int | str  # a sequence length (that length's checkpoint) or a checkpoint file


def split_mapping(raw: Mapping[str, object]) -> tuple[dict[int, str], dict[str, list[EnsembleMember]]]:
    """MODEL_MAPPING's two kinds of entry: a length (``"20": "models/a.pt"``) names the one file for that length; any
    other name is an ensemble, a list of members, each a length or a file (``"seeds": ["s0.pt", "s1.pt"]``,
    ``"all-lengths": [10, 20, 40]``). ValueError says what is wrong with an entry."""
    lengths: dict[int, str] = {}
    ensembles: dict[str, list[EnsembleMember]] = {}
    for key, value in raw.items():
        name = str(key).strip()
        if name.isdigit() and name.isascii():
            if not isinstance(value, str):
                raise ValueError(
                    f"MODEL_MAPPING['{name}'] must be one checkpoint file; to combine several, name an ensemble: "
                    f'{{"my-ensemble": [...]}}'
                )
            lengths[int(name)] = value
            continue
        if not isinstance(value, list) or not value:
            raise ValueError(f"MODEL_MAPPING['{name}'] is an ensemble and must be a list of lengths or files")
        members: list[EnsembleMember] = []
        for member in value:
            if isinstance(member, bool) or not isinstance(member, int | str) or member in ("", 0):
                raise ValueError(f"MODEL_MAPPING['{name}']: {member!r} is neither a sequence length nor a file")
            members.append(int(member) if isinstance(member, str) and member.isdigit() else member)
        ensembles[name] = members
    return lengths, ensembles


def for_length(sequence_length: int) -> str:
    """How a choice names its length in words: "for 20 frames", or for a frame model "for photos (length 1)"."""
    return "for photos (length 1)" if sequence_length == FRAME_MODEL_LENGTH else f"for {sequence_length} frames"


def how_to_get_checkpoint(sequence_length: int) -> str:
    if sequence_length == FRAME_MODEL_LENGTH:
        return (
            "Photos are scored by a frame model: the default one ships as "
            f"{SHIPPED_PHOTO_FILE} (models/README.md); train your own with 'python manage.py preprocess_images' and "
            "'python manage.py train_model --frame-model'. Or name a file with --checkpoint FILE, or map it under "
            '"1" in the MODEL_MAPPING setting.'
        )
    return (
        f"To get a checkpoint for {sequence_length} frames: convert one of the original app's files with "
        f"'python manage.py import_checkpoint model_<acc>_acc_{sequence_length}_frames_<...>.pt', or make an "
        f"untrained one to try the pipeline with 'python manage.py create_checkpoint --sequence-length "
        f"{sequence_length}'; either lands in the models folder and is found there. Or name a file with "
        "--checkpoint FILE, or map it in the MODEL_MAPPING setting."
    )


def choose_from_mapping(
    sequence_length: int,
    mapping: Mapping[int | str, str] | None,
    models_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
    mapping_name: str = "MODEL_MAPPING",
) -> CheckpointChoice:
    """The checkpoint for ``sequence_length`` from MODEL_MAPPING, else the best in the models folder, with why;
    NoCheckpointForLength says exactly how to get one."""
    base = Path(base_dir)
    explicit = {int(length): path for length, path in (mapping or {}).items()}
    if sequence_length in explicit:
        path = _absolute(explicit[sequence_length], base)
        if not path.is_file():
            raise NoCheckpointForLength(
                f"MODEL_MAPPING names '{path}' {for_length(sequence_length)}, but that file does not exist. "
                + how_to_get_checkpoint(sequence_length)
            )
        return CheckpointChoice(path, "mapping", f"named in {mapping_name} {for_length(sequence_length)}")
    best = _best_in_folder(models_dir)
    if sequence_length in best:
        summary, count = best[sequence_length]
        among = "the only one" if count == 1 else f"the preferred of {count}: {PREFERENCE_ORDER}"
        return CheckpointChoice(
            summary.path,
            "models_dir",
            f"best checkpoint {for_length(sequence_length)} in {_shown(Path(models_dir), base)} ({among})",
        )
    available = sorted({*explicit, *best})
    lengths = ", ".join(str(n) for n in available) or "none"
    raise NoCheckpointForLength(
        f"No checkpoint for {sequence_length}-frame sequences (available: {lengths}). "
        + how_to_get_checkpoint(sequence_length)
    )


def resolve_checkpoint(
    sequence_length: int,
    mapping: Mapping[int | str, str] | None,
    models_dir: str | os.PathLike,
    base_dir: str | os.PathLike,
) -> Path:
    """The checkpoint file for ``sequence_length`` (see :func:`choose_from_mapping`)."""
    return choose_from_mapping(sequence_length, mapping, models_dir, base_dir).path
