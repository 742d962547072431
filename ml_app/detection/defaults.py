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
# File types read as video, for uploads and for dataset folders (extensions without the dot, lower case).
VIDEO_EXTENSIONS: tuple[str, ...] = ("mp4", "mov", "m4v", "webm", "mkv", "avi", "mpg", "mpeg", "wmv", "flv")

# The default model that ships in models/ (see models/README.md): one file per length.
SHIPPED_LENGTHS: tuple[int, ...] = (10, 20, 40)
SHIPPED_NAME = "default_mobilenet_v2_{length}_frames"


def shipped_file(length: int) -> str:
    """Where the default model for ``length`` frames lives, relative to the project folder."""
    return f"models/{SHIPPED_NAME.format(length=length)}.pt"


SHIPPED_ENSEMBLE = "all-lengths"  # the shipped models combined, offered when all of them are there


def shipped_ensembles(project: Path) -> dict[str, list[int | str]]:
    """The default ensemble of every shipped length, when every shipped file is there."""
    return {SHIPPED_ENSEMBLE: list(SHIPPED_LENGTHS)} if len(shipped_mapping(project)) == len(SHIPPED_LENGTHS) else {}


def shipped_mapping(project: Path) -> dict[int, str]:
    """The default MODEL_MAPPING: every length whose shipped file is present."""
    return {length: shipped_file(length) for length in SHIPPED_LENGTHS if (project / shipped_file(length)).is_file()}
