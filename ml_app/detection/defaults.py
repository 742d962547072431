"""The defaults that several parts of the project share, in one light module (no torch, no Django).

Settings, the command line, preprocessing, training and the benchmark read these names instead of repeating the
numbers, so changing a default is one edit.
"""

from __future__ import annotations

from pathlib import Path

# The sequence lengths the site offers (frames per window), as in the original app.
SUPPORTED_LENGTHS: tuple[int, ...] = (10, 20, 40, 60, 80, 100)
# Windows spread over a video, and face sequences scored per network call.
DEFAULT_MAX_WINDOWS = 8
DEFAULT_BATCH_SIZE = 2
# A frame model (sequence length 1, for photos) scores a video by windows of this many consecutive frames, each
# window's score the mean of its frames' probabilities; the faces must be followed through the window as for any model.
FRAME_MODEL_WINDOW = 10
FRAME_MODEL_LENGTH = 1  # the sequence length of a frame model, and only of a frame model


def window_frames(sequence_length: int) -> int:
    """Frames per video window for a checkpoint of ``sequence_length``: its own length, or a frame model's window."""
    return FRAME_MODEL_WINDOW if sequence_length == FRAME_MODEL_LENGTH else sequence_length


# File types read as video, for uploads and for dataset folders (extensions without the dot, lower case).
VIDEO_EXTENSIONS: tuple[str, ...] = ("mp4", "mov", "m4v", "webm", "mkv", "avi", "mpg", "mpeg", "wmv", "flv")
# Photos: Pillow's format name -> the file endings that go with it (the one allow-list, for uploads, analyze_image and
# preprocess_images), and the pixel limit checked before a photo is decoded: 50 megapixels still takes an 8192 x 6144
# photo (about 150 MB as RGB) but not a decompression bomb that unpacks to gigabytes.
IMAGE_FORMATS: dict[str, tuple[str, ...]] = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "WEBP": (".webp",)}
IMAGE_SUFFIXES: tuple[str, ...] = tuple(suffix for suffixes in IMAGE_FORMATS.values() for suffix in suffixes)
DEFAULT_MAX_PIXELS = 50_000_000

# The default model that ships in models/ (see models/README.md): one file per length.
SHIPPED_LENGTHS: tuple[int, ...] = (10, 20, 40)
# The site's default length: the shipped length with the best validation AUC in the recipe that built the files
# (models/README.md; the 10-frame file also ranks the test split best and calls no real video FAKE).
SHIPPED_DEFAULT_LENGTH = 10
SHIPPED_NAME = "default_mobilenet_v2_{length}_frames"


def shipped_file(length: int) -> str:
    """Where the default model for ``length`` frames lives, relative to the project folder."""
    return f"models/{SHIPPED_NAME.format(length=length)}.pt"


SHIPPED_ENSEMBLE = "all-lengths"  # the shipped models combined, offered when all of them are there


def shipped_ensembles(project: Path) -> dict[str, list[int | str]]:
    """The default ensemble of every shipped length, when every shipped file is there."""
    present = shipped_mapping(project)
    return {SHIPPED_ENSEMBLE: list(SHIPPED_LENGTHS)} if all(length in present for length in SHIPPED_LENGTHS) else {}


# The default photo model (a frame model, sequence length 1: see models/README.md, "The photo model").
SHIPPED_PHOTO_FILE = "models/default_photo_efficientnet_lite0.pt"


def shipped_mapping(project: Path) -> dict[int, str]:
    """The default MODEL_MAPPING: every length whose shipped file is present, and the photo model under 1."""
    mapping = {length: shipped_file(length) for length in SHIPPED_LENGTHS if (project / shipped_file(length)).is_file()}
    if (project / SHIPPED_PHOTO_FILE).is_file():
        mapping[FRAME_MODEL_LENGTH] = SHIPPED_PHOTO_FILE
    return mapping
