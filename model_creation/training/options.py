"""Small helpers the management commands share: one-line errors and preprocessing from flags or a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.errors import DetectionError
from ml_app.detection.preprocessing import DetectorSettings, Preprocessing


def one_line(message: Any) -> str:
    """An exception's message (``.message`` when it has one) on one line, for CommandError."""
    return " ".join(str(getattr(message, "message", message)).split())


# Settings a stored crop does not depend on: crops are uint8 pixels, normalised only when loaded, so a checkpoint may
# normalise a manifest's crops its own way (a backbone's mean/std; see network.backbone_preprocessing).
NORMALISATION_KEYS = ("mean", "std")


def crop_differences(manifest_preprocessing: Preprocessing, checkpoint_preprocessing: Preprocessing) -> list[str]:
    """The settings that make a manifest's crops other than those a checkpoint expects: every preprocessing setting
    but the normalisation. The one rule wherever a manifest's settings are compared with a checkpoint's."""
    mine, theirs = manifest_preprocessing.to_dict(), checkpoint_preprocessing.to_dict()
    return sorted(key for key in theirs if key not in NORMALISATION_KEYS and mine.get(key) != theirs[key])


def incompatibility(manifest, checkpoint) -> str | None:
    """Why a manifest's clips cannot be scored by a checkpoint (other crops, too short), or None. The checkpoint's
    own normalisation is applied to the crops, so a different mean/std is no reason (see :func:`crop_differences`)."""
    keys = crop_differences(manifest.preprocessing, checkpoint.preprocessing)
    if keys:
        return (
            f"The manifest's crops were made with other preprocessing than the checkpoint's ({', '.join(keys)} "
            "differ): evaluate with --videos to preprocess with the checkpoint's settings, or preprocess again "
            "with --preprocessing-from CHECKPOINT."
        )
    if manifest.sequence_length < checkpoint.sequence_length:
        return (
            f"The manifest's clips have {manifest.sequence_length} frames; the checkpoint needs "
            f"{checkpoint.sequence_length}."
        )
    return None


def preprocessing_from_file(path: Path) -> Preprocessing:
    """A checkpoint's preprocessing (``.pt``), or a JSON file holding a Preprocessing dict (or a manifest)."""
    if not path.is_file():
        raise ValueError(f"'{path}' does not exist.")
    if path.suffix == ".pt":
        return load_checkpoint(path).preprocessing
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"'{path}' is neither a checkpoint (.pt) nor JSON: {exc}.") from exc
    if isinstance(data, dict) and "preprocessing" in data:
        data = data["preprocessing"]
    try:
        return Preprocessing.from_dict(data)
    except DetectionError as exc:
        raise ValueError(f"'{path}': {exc.message}") from exc


def crop_defaults() -> dict[str, Any]:
    """The crop flags' defaults, taken from the app's own Preprocessing and DetectorSettings (max side 0: none).

    The detector's are those of the default backend; a flag left out takes the default of the backend chosen.
    """
    prep, detector = Preprocessing(), DetectorSettings()
    return {
        "image_size": prep.image_size,
        "margin": prep.margin,
        "detector_backend": detector.backend,
        "detector_model": detector.model,
        "detector_max_side": detector.max_side or 0,
        "full_detect_every": detector.full_detect_every,
    }


_DETECTOR_FLAGS = {
    "detector_backend": "backend",
    "detector_model": "model",
    "detector_max_side": "max_side",
    "full_detect_every": "full_detect_every",
}


def preprocessing_from_options(options: dict[str, Any]) -> Preprocessing:
    """The Preprocessing the crop flags describe; a flag that is missing or None keeps the default (a detector flag:
    the chosen backend's default, so ``--detector-model hog`` alone is the shipped models' HOG with its values)."""
    given = {key: value for key, value in options.items() if value is not None}
    detector = {field: given[flag] for flag, field in _DETECTOR_FLAGS.items() if flag in given}
    if "max_side" in detector:
        detector["max_side"] = detector["max_side"] or None
    prep = Preprocessing()
    return Preprocessing(
        detector=DetectorSettings(**detector),
        image_size=given.get("image_size", prep.image_size),
        margin=given.get("margin", prep.margin),
    )
