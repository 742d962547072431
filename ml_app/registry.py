"""The checkpoint registry: validating files, registering them, and choosing the active one per sequence length."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from django.conf import settings
from django.db import transaction

from .detection.checkpoints import Checkpoint as CheckpointFile
from .detection.checkpoints import build_model, load_checkpoint
from .detection.errors import CheckpointError, DetectionError
from .detection.model_mapping import SUPPORTED_LENGTHS, discover_checkpoints
from .models import Checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValidatedCheckpoint:
    """What validation learned about a file: its loaded form and its sha256."""

    checkpoint: CheckpointFile
    path: Path


def validate_checkpoint_file(path: str | os.PathLike) -> ValidatedCheckpoint:
    """Load safely (weights_only), build the architecture with the weights, run one dummy window through it.
    ``.onnx`` files from export_onnx are loaded with onnxruntime and checked the same way.

    Raises CheckpointError (or another DetectionError) with the reason a file is unusable.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":  # an export_onnx file: onnxruntime, settings from its metadata
        from .detection.onnx_model import load_onnx_checkpoint

        checkpoint, model = load_onnx_checkpoint(path)
    else:
        checkpoint = load_checkpoint(path)
        model = None
    if checkpoint.sequence_length not in SUPPORTED_LENGTHS:
        raise CheckpointError(
            f"'{path.name}' analyses {checkpoint.sequence_length}-frame windows; the site offers "
            f"{', '.join(map(str, SUPPORTED_LENGTHS))}."
        )
    model = model or build_model(checkpoint)
    size = checkpoint.preprocessing.image_size
    with torch.inference_mode():
        logits = model(torch.zeros(1, checkpoint.sequence_length, 3, size, size))
    if tuple(logits.shape) != (1, 2) or not torch.isfinite(logits).all():
        raise CheckpointError(f"'{path.name}' builds, but its network gives unusable output on a test input.")
    checkpoint.state_dict = {}
    return ValidatedCheckpoint(checkpoint, path)


def _relative_to_project(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path.resolve())


def fields_from(validated: ValidatedCheckpoint) -> dict:
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
        "size_bytes": validated.path.stat().st_size,
    }


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


def register(path: Path, source: str, activate: bool = False, notes: str = "") -> Checkpoint:
    """Validate ``path`` and add it to the registry (or return the entry that already has its sha256)."""
    validated = validate_checkpoint_file(path)
    existing = Checkpoint.objects.filter(sha256=validated.checkpoint.sha256).first()
    if existing is not None:
        if activate and not existing.is_active:
            activate_checkpoint(existing)
        return existing
    with transaction.atomic():
        entry = Checkpoint.objects.create(
            path=_relative_to_project(path), source=source, notes=notes, **fields_from(validated)
        )
        if activate or not Checkpoint.objects.filter(sequence_length=entry.sequence_length, is_active=True).exists():
            activate_checkpoint(entry)
    return entry


def activate_checkpoint(entry: Checkpoint) -> None:
    """Make ``entry`` the one active checkpoint for its sequence length."""
    with transaction.atomic():
        Checkpoint.objects.filter(sequence_length=entry.sequence_length, is_active=True).exclude(pk=entry.pk).update(
            is_active=False
        )
        entry.is_active = True
        entry.save(update_fields=["is_active"])


def sync_checkpoints() -> tuple[list[Checkpoint], dict[str, str]]:
    """Register every checkpoint named in MODEL_MAPPING or lying in the models folder.

    A MODEL_MAPPING set by the operator makes its entries active for their length; the default mapping (the shipped
    default model) and the files found in the models folder (best first: trained, most accurate) become active only
    for a length without an active checkpoint, so a restart never undoes an administrator's "Activate". Returns the
    entries and the files skipped, with why.
    """
    registered: list[Checkpoint] = []
    skipped: dict[str, str] = {}
    explicit = getattr(settings, "DEFAULT_MODEL_MAPPING", {}) != settings.MODEL_MAPPING
    for length, raw in sorted(settings.MODEL_MAPPING.items()):
        path = Path(raw) if Path(raw).is_absolute() else Path(settings.BASE_DIR) / raw
        try:
            declared = validate_checkpoint_file(path).checkpoint.sequence_length
            if declared != int(length):
                skipped[str(path)] = (
                    f"MODEL_MAPPING maps it to {length} frames, but it analyses {declared}-frame windows."
                )
                continue
            registered.append(register(path, Checkpoint.Source.MAPPING, activate=explicit))
        except DetectionError as exc:
            skipped[str(path)] = exc.message
    found, broken = discover_checkpoints(settings.MODELS_DIR)
    skipped.update({str(path): reason for path, reason in broken.items()})
    found.sort(key=lambda s: (not s.untrained, s.accuracy or 0.0), reverse=True)
    mapped = {entry.file_path.resolve() for entry in registered}
    for summary in found:
        if Path(summary.path).resolve() in mapped:  # already registered above, as MODEL_MAPPING's
            continue
        try:
            registered.append(register(summary.path, Checkpoint.Source.MODELS_DIR))
        except DetectionError as exc:
            skipped[str(summary.path)] = exc.message
    for path, reason in skipped.items():
        log.warning("Checkpoint %s not registered: %s", path, reason)
    return registered, skipped


def active_checkpoints() -> dict[int, Checkpoint]:
    """The active checkpoint per sequence length whose file is still there."""
    entries = Checkpoint.objects.filter(is_active=True).order_by("sequence_length")
    return {entry.sequence_length: entry for entry in entries if entry.file_path.is_file()}
