"""What every layout produces and the helpers they share: :class:`VideoEntry`, :class:`LayoutError`, split names,
finding video files (by the extensions in ``ml_app.detection.defaults``) and grouping by a regular expression.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ml_app.detection.defaults import VIDEO_EXTENSIONS

# File name suffixes read as video (the shared extension list, with the dot, lower case).
VIDEO_SUFFIXES = frozenset(f".{extension}" for extension in VIDEO_EXTENSIONS)
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


class LayoutError(ValueError):
    """The input does not look like the layout asked for; the message says what is missing or wrong."""


@dataclass(frozen=True)
class VideoEntry:
    """One video of a dataset: where it is, its label and what it may not be separated from."""

    path: Path  # absolute
    relpath: str  # relative to the dataset root, POSIX separators
    label: str  # REAL or FAKE
    dataset: str
    group: str
    split: str = ""  # train, val, test, or "" when the dataset gives none
    method: str = ""  # manipulation method, where known
    original: str = ""  # the source video of a fake, where known

    @property
    def video_id(self) -> str:
        """A file-name-safe id, unique across datasets, stable across machines (used for shards and resuming)."""
        digest = hashlib.sha1(f"{self.dataset}/{self.relpath}".encode()).hexdigest()[:10]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.relpath).stem)[:60]
        return f"{self.dataset}-{stem}-{digest}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def split_name(value: str) -> str:
    return _SPLIT_ALIASES.get(value.strip().lower(), "")


def videos_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def grouper(group_regex: str | None, dataset: str) -> Callable[[str], str]:
    """Group of a relative path: its stem, or what ``group_regex`` captures from it."""
    if not group_regex:
        return lambda relpath: f"{dataset}:{Path(relpath).stem}"
    try:
        pattern = re.compile(group_regex)
    except re.error as exc:
        raise LayoutError(f"--group-regex {group_regex!r} is not a valid regular expression: {exc}.") from exc

    def group(relpath: str) -> str:
        found = pattern.search(relpath)
        if found is None:
            raise LayoutError(f"--group-regex {group_regex!r} does not match '{relpath}'.")
        return f"{dataset}:{found.group(1) if pattern.groups else found.group(0)}"

    return group
