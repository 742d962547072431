"""What every layout produces and the helpers they share: :class:`VideoEntry`, :class:`LayoutError`, split names,
finding media files (:class:`Media`: videos by the extensions in ``ml_app.detection.defaults``, photos by
``ml_app.detection.images``) and grouping by a regular expression.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ml_app.detection.defaults import VIDEO_EXTENSIONS
from ml_app.detection.images import IMAGE_SUFFIXES

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


@dataclass(frozen=True)
class Media:
    """What a layout looks for: videos or photos, found by file suffix. ``name`` is the manifest's ``media``.

    A video's default group is its stem, so ``real/012.mp4`` and the fake ``fake/012.mp4`` made from it stay together;
    photo datasets name files independently (140k's ``real/1.jpg`` has nothing to do with another folder's
    ``1.jpg``), so each photo is its own group unless ``--group-regex`` says otherwise.
    """

    name: str  # "videos" or "images"
    suffixes: frozenset[str]
    group_by_stem: bool


VIDEOS = Media("videos", VIDEO_SUFFIXES, group_by_stem=True)
IMAGES = Media("images", frozenset(IMAGE_SUFFIXES), group_by_stem=False)


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


def files_under(folder: Path, media: Media = VIDEOS) -> list[Path]:
    """The files of ``media``'s kind anywhere under ``folder`` (any case of suffix), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in media.suffixes and p.is_file())


def videos_under(folder: Path) -> list[Path]:
    return files_under(folder, VIDEOS)


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def grouper(group_regex: str | None, dataset: str, media: Media = VIDEOS) -> Callable[[str], str]:
    """Group of a relative path: its stem (videos) or itself (photos), or what ``group_regex`` captures from it."""
    if not group_regex and media.group_by_stem:
        return lambda relpath: f"{dataset}:{Path(relpath).stem}"
    if not group_regex:
        return lambda relpath: f"{dataset}:{relpath}"
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
