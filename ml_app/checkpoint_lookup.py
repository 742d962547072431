"""The detection core's checkpoint resolution, fed from Django settings."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .detection.model_mapping import effective_mapping, resolve_checkpoint


def checkpoint_for_length(sequence_length: int) -> Path:
    """The checkpoint that analyses ``sequence_length``-frame windows; NoCheckpointForLength says how to get one."""
    return resolve_checkpoint(sequence_length, settings.MODEL_MAPPING, settings.MODELS_DIR, settings.BASE_DIR)


def available_checkpoints() -> dict[int, Path]:
    """Every sequence length that has a checkpoint, from MODEL_MAPPING and the models folder."""
    return effective_mapping(settings.MODEL_MAPPING, settings.MODELS_DIR, settings.BASE_DIR)
