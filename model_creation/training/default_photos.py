"""The real face photos of the default-model recipe: every source of the shared data, grouped by person.

Self-blended training turns any real face into a fake of it, so every real face photo is a pair of examples; what the
shared videos lack is people (about fifty), and these sources bring thousands:

* ``gan_faces/real``: 1,100 FFHQ photos (one person each, CC BY-NC-SA);
* ``real_faces/celeba``: 4,998 aligned CelebA crops with ``identities.csv`` (3,570 people: a person's photos are one
  group, so they are never on both sides of a split);
* ``real_faces/utkface``: 10,000 tightly cropped UTKFace photos of adults, about one per person.

A photo's split is its group's, drawn by a hash of the group's name (about one group in twenty validates), so adding
or removing photos never moves anyone else. Validation photos never train: they measure whether the model scores a
real face from a photo like a real face from a video (the card's photo check). Terms: non-commercial research.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .default_data import Row, evenly_spaced

FFHQ, CELEBA, UTKFACE = "ffhq", "celeba", "utkface"
FOLDERS = {FFHQ: "gan_faces/real", CELEBA: "real_faces/celeba", UTKFACE: "real_faces/utkface"}
CELEBA_IDENTITIES = "identities.csv"
VALIDATION_SHARE = 20  # one group in this many validates


@dataclass(frozen=True)
class PhotoSource:
    """One source as found: its photos and the group (person) of each."""

    name: str
    folder: Path
    groups: dict[Path, str]

    @property
    def photos(self) -> list[Path]:
        return sorted(self.groups)


def _celeba_groups(folder: Path) -> dict[Path, str]:
    """Each CelebA photo's person (``identities.csv``: filename, identity); a photo the file does not list is a
    person of its own."""
    identities: dict[str, str] = {}
    listing = folder / CELEBA_IDENTITIES
    if listing.is_file():
        with open(listing, newline="") as handle:
            identities = {row["filename"]: row["identity"] for row in csv.DictReader(handle)}
    return {
        path: f"{CELEBA}:id{identities[path.name]}" if path.name in identities else f"{CELEBA}:{path.stem}"
        for path in folder.glob("*.jpg")
    }


def photo_sources(data: Path) -> list[PhotoSource]:
    """The sources present under ``data``, in a fixed order (a missing folder is simply not a source)."""
    sources = []
    for name, relative in FOLDERS.items():
        folder = data / relative
        if not folder.is_dir():
            continue
        groups = (
            _celeba_groups(folder) if name == CELEBA else {path: f"{name}:{path.stem}" for path in folder.glob("*.jpg")}
        )
        if groups:
            sources.append(PhotoSource(name, folder, groups))
    return sources


def split_of_group(group: str) -> str:
    """``val`` for about one group in ``VALIDATION_SHARE`` (a hash of its name, stable across runs), else ``train``."""
    return "val" if zlib.crc32(group.encode()) % VALIDATION_SHARE == 0 else "train"


def photo_rows(data: Path, count: int | None = None) -> list[Row]:
    """The recipe's photos: all of every source (``count`` None), or ``count`` of them evenly spaced over the
    sources' photos in order. FileNotFoundError when there are fewer."""
    found = [(source, path) for source in photo_sources(data) for path in source.photos]
    if count is not None and len(found) < count:
        where = ", ".join(str(data / relative) for relative in FOLDERS.values())
        raise FileNotFoundError(f"The photo folders ({where}) hold {len(found)} photos; the recipe takes {count}.")
    chosen = found if count is None else [found[index] for index in evenly_spaced(len(found), count)]
    rows = []
    for source, path in chosen:
        group = source.groups[path]
        rows.append(Row(str(path), "REAL", split_of_group(group), group, "real"))
    return rows


def source_of_photo(group: str) -> str:
    """The source of a photo's group (``celeba:id2937`` -> ``celeba``; also once a dataset name prefixes it)."""
    return next((part for part in group.split(":") if part in FOLDERS), group.split(":", maxsplit=1)[0])


class GroupedPhoto(Protocol):
    """A photo's person and split: a dataset row, or a photo in a preprocessing manifest."""

    @property
    def group(self) -> str: ...

    @property
    def split(self) -> str: ...


def photo_counts(rows: list[GroupedPhoto]) -> dict[str, dict[str, int]]:
    """Photos and people per source and split, for the card."""
    table: dict[str, dict[str, int]] = {}
    people: dict[str, set[str]] = {}
    for row in rows:
        source = source_of_photo(row.group)
        entry = table.setdefault(source, {"train": 0, "val": 0, "people": 0})
        entry[row.split] += 1
        people.setdefault(source, set()).add(row.group)
    for source, groups in people.items():
        table[source]["people"] = len(groups)
    return table
