"""The checkpoint registry: the one way a file gets in (validated once: safe load, the architecture built with its
weights, a forward pass), activation, and the active checkpoint per sequence length, which the site analyses with
(and the command line too, see ``checkpoint_lookup``).

The admin's upload, ``sync_checkpoints`` (run by run.sh) and ``train_model --register`` all register through
:func:`add_validated`. torch is imported only where a file is validated or summarised, so commands that merely load
the admin (migrate, collectstatic) and a sync that finds nothing new start quickly.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from .detection.defaults import SUPPORTED_LENGTHS
from .detection.errors import CheckpointError, DetectionError
from .detection.files import file_sha256
from .detection.model_mapping import CheckpointSummary, best_first, checkpoint_files, summarize_checkpoint
from .models import Checkpoint, Ensemble

if TYPE_CHECKING:
    from .detection.checkpoints import CheckpointFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidatedCheckpoint:
    """What validation learned about a file: its loaded form (weights dropped) and where it was."""

    checkpoint: CheckpointFile
    path: Path

    @property
    def sha256(self) -> str:
        return str(self.checkpoint.sha256)


class AlreadyRegistered(CheckpointError):
    """The file's sha256 is in the registry already."""

    code = "checkpoint_already_registered"

    def __init__(self, entry: Checkpoint):
        super().__init__(f"This file is already registered as '{entry}'.")
        self.entry = entry


def validate_checkpoint_file(path: str | os.PathLike) -> ValidatedCheckpoint:
    """Load safely (weights_only), build the architecture with the weights, run one dummy window through it.
    ``.onnx`` files from export_onnx are loaded with onnxruntime and checked the same way.

    Raises CheckpointError (or another DetectionError) with the reason a file is unusable.
    """
    import torch

    from .detection.checkpoints import build_model, load_checkpoint

    path = Path(path)
    if path.suffix.lower() == ".onnx":  # an export_onnx file: onnxruntime, settings from its metadata
        from .detection.onnx_model import load_onnx_checkpoint

        checkpoint, model = load_onnx_checkpoint(path)
    else:
        checkpoint = load_checkpoint(path)
        model = None
    if checkpoint.sequence_length not in SUPPORTED_LENGTHS and not checkpoint.architecture.is_frame_model:
        raise CheckpointError(
            f"'{path.name}' analyses {checkpoint.sequence_length}-frame windows; the site offers "
            f"{', '.join(map(str, SUPPORTED_LENGTHS))}, and 1 for a frame model (photos)."
        )
    model = model or build_model(checkpoint)
    size = checkpoint.preprocessing.image_size
    with torch.inference_mode():
        logits = model(torch.zeros(1, checkpoint.sequence_length, 3, size, size))
    if tuple(logits.shape) != (1, 2) or not torch.isfinite(logits).all():
        raise CheckpointError(f"'{path.name}' builds, but its network gives unusable output on a test input.")
    checkpoint.state_dict = {}
    return ValidatedCheckpoint(checkpoint, path)


def registered_file(path: str | os.PathLike) -> Checkpoint | None:
    """The registry entry holding a file with the same sha256 as ``path`` (hashing only: no load, no build)."""
    path = Path(path)
    if not path.is_file():
        return None
    return Checkpoint.objects.filter(sha256=file_sha256(path)).first()


def validate_new_file(path: str | os.PathLike) -> ValidatedCheckpoint:
    """Validate a file the registry does not hold yet; AlreadyRegistered (without validating) if it does."""
    known = registered_file(path)
    if known is not None:
        raise AlreadyRegistered(known)
    return validate_checkpoint_file(path)


def _relative_to_project(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path.resolve())


def fields_from(validated: ValidatedCheckpoint, path: Path | None = None) -> dict:
    """The registry fields read from the file (``path``: where it lies now, if it moved since validation)."""
    ck = validated.checkpoint
    return {
        "name": ck.name[:200],
        "sha256": ck.sha256,
        "sequence_length": ck.sequence_length,
        "backbone": ck.architecture.backbone,
        "image_size": ck.preprocessing.image_size,
        "architecture": ck.architecture.to_dict(),
        "preprocessing": ck.preprocessing.to_dict(),
        "metrics": ck.metrics,
        "accuracy": ck.accuracy,
        "untrained": ck.untrained,
        "size_bytes": (path or validated.path).stat().st_size,
    }


def add_validated(
    validated: ValidatedCheckpoint,
    source: str,
    *,
    path: str | os.PathLike | None = None,
    activate: bool = False,
    notes: str = "",
    entry: Checkpoint | None = None,
) -> Checkpoint:
    """Create the registry entry of a validated file: the one place rows are made.

    ``path`` is where the file lies now (default: where it was validated), stored relative to the project folder
    when inside it. ``entry`` is an unsaved instance to fill (the admin's). The entry becomes active if ``activate``
    or if its length has no active checkpoint. AlreadyRegistered if its sha256 is taken.
    """
    where = Path(path) if path is not None else validated.path
    with transaction.atomic():
        existing = Checkpoint.objects.filter(sha256=validated.sha256).first()
        if existing is not None:
            raise AlreadyRegistered(existing)
        entry = entry if entry is not None else Checkpoint()
        for key, value in fields_from(validated, where).items():
            setattr(entry, key, value)
        entry.path = _relative_to_project(where)
        entry.source = source
        entry.notes = notes
        entry.is_active = False
        entry.save()
        if activate or not Checkpoint.objects.filter(sequence_length=entry.sequence_length, is_active=True).exists():
            activate_checkpoint(entry)
    return entry


def register(path: str | os.PathLike, source: str, activate: bool = False, notes: str = "") -> Checkpoint:
    """Validate ``path`` and add it to the registry, or return the entry that already has its sha256 (activated
    if ``activate``), without validating it again."""
    try:
        return add_validated(validate_new_file(path), source, activate=activate, notes=notes)
    except AlreadyRegistered as known:
        if activate and not known.entry.is_active:
            activate_checkpoint(known.entry)
        return known.entry


def store_uploaded_file(temporary: Path, name: str) -> Path:
    """Move a validated upload into the models folder under a name that does not overwrite anything."""
    folder = Path(settings.MODELS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)[:120] or "checkpoint"
    target = folder / f"{stem}.pt"
    counter = 1
    while target.exists():
        target = folder / f"{stem}_{counter}.pt"
        counter += 1
    shutil.move(str(temporary), target)
    return target


def register_upload(
    validated: ValidatedCheckpoint, name: str, *, activate: bool, notes: str = "", entry: Checkpoint | None = None
) -> Checkpoint:
    """Register a validated upload (``validated.path``, a temporary file): moved into the models folder under its
    uploader's ``name`` (sanitised), then added like any other file."""
    stored = store_uploaded_file(validated.path, name)
    try:
        return add_validated(
            validated, Checkpoint.Source.UPLOAD, path=stored, activate=activate, notes=notes, entry=entry
        )
    except BaseException:
        stored.unlink(missing_ok=True)
        raise


def activate_checkpoint(entry: Checkpoint) -> None:
    """Make ``entry`` the one active checkpoint for its sequence length."""
    with transaction.atomic():
        Checkpoint.objects.filter(sequence_length=entry.sequence_length, is_active=True).exclude(pk=entry.pk).update(
            is_active=False
        )
        entry.is_active = True
        entry.save(update_fields=["is_active"])


def _register_mapped(path: Path, length: int, activate: bool) -> Checkpoint:
    """MODEL_MAPPING's file for ``length``: registered (validated once, or not at all if known), refused if it
    analyses another length."""
    try:
        validated = validate_new_file(path)
        entry, declared = None, validated.checkpoint.sequence_length
    except AlreadyRegistered as known:
        validated, entry, declared = None, known.entry, known.entry.sequence_length
    if declared != length:
        raise CheckpointError(f"MODEL_MAPPING maps it to {length} frames, but it analyses {declared}-frame windows.")
    if validated is not None:
        return add_validated(validated, Checkpoint.Source.MAPPING, activate=activate)
    if activate and not entry.is_active:
        activate_checkpoint(entry)
    return entry


def sync_checkpoints() -> tuple[list[Checkpoint], dict[str, str]]:
    """Register every checkpoint named in MODEL_MAPPING or lying in the models folder.

    A MODEL_MAPPING set by the operator makes its entries active for their length; the default mapping (the shipped
    default model) and the files found in the models folder (in the preference order of ``model_mapping``) become
    active only for a length without an active checkpoint, so a restart never undoes an administrator's "Activate".
    A file whose sha256 is registered already is not validated again; any other file is validated once. Returns the
    entries and the files skipped, with why.
    """
    registered: list[Checkpoint] = []
    skipped: dict[str, str] = {}
    explicit = getattr(settings, "DEFAULT_MODEL_MAPPING", {}) != settings.MODEL_MAPPING
    mapped: set[Path] = set()
    for length, raw in sorted(settings.MODEL_MAPPING.items()):
        path = Path(raw) if Path(raw).is_absolute() else Path(settings.BASE_DIR) / raw
        try:
            entry = _register_mapped(path, int(length), activate=explicit)
        except DetectionError as exc:
            skipped[str(path)] = exc.message
            continue
        registered.append(entry)
        mapped.update({path.resolve(), entry.file_path.resolve()})
    new: list[CheckpointSummary] = []
    for path in checkpoint_files(settings.MODELS_DIR):
        if path.resolve() in mapped:  # already registered above, as MODEL_MAPPING's
            continue
        known = registered_file(path)
        if known is not None:
            registered.append(known)
            continue
        try:
            new.append(summarize_checkpoint(path))
        except CheckpointError as exc:
            skipped[str(path)] = exc.message
    for summary in best_first(new):  # the best new file becomes active where a length has none
        try:
            registered.append(register(summary.path, Checkpoint.Source.MODELS_DIR))
        except DetectionError as exc:
            skipped[str(summary.path)] = exc.message
    _sync_ensembles(skipped)
    for path, reason in skipped.items():
        log.warning("Checkpoint %s not registered: %s", path, reason)
    return registered, skipped


def _sync_ensembles(skipped: dict[str, str]) -> None:
    """MODEL_MAPPING's ensembles as registry entries: created where missing, their members brought in line; an
    administrator's deactivation stays."""
    for name, members in sorted(getattr(settings, "MODEL_ENSEMBLES", {}).items()):
        lengths = [member for member in members if isinstance(member, int)]
        files: list[Checkpoint] = []
        for member in members:
            if isinstance(member, int):
                continue
            path = Path(member) if Path(member).is_absolute() else Path(settings.BASE_DIR) / member
            try:
                files.append(registered_file(path) or register(path, Checkpoint.Source.MAPPING))
            except DetectionError as exc:
                skipped[str(path)] = f"member of ensemble '{name}': {exc.message}"
        entry, _ = Ensemble.objects.get_or_create(name=name, defaults={"notes": "from MODEL_MAPPING"})
        entry.lengths = lengths
        entry.save(update_fields=["lengths"])
        entry.members.set(files)


def active_ensembles() -> dict[str, list[Checkpoint]]:
    """Each active ensemble with at least two members available now, and those members."""
    found = {entry.name: entry.current_members() for entry in Ensemble.objects.filter(is_active=True)}
    return {name: members for name, members in found.items() if len(members) >= 2}


def active_checkpoints() -> dict[int, Checkpoint]:
    """The active checkpoint per sequence length whose file is still there."""
    entries = Checkpoint.objects.filter(is_active=True).order_by("sequence_length")
    return {entry.sequence_length: entry for entry in entries if entry.file_path.is_file()}
