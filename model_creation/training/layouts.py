"""Turning a dataset's folder tree into a list of labelled videos with a split and a leakage group.

Each layout knows how one dataset is arranged and what links its videos: a fake made from a source video, and the
identities in it, must never sit on both sides of a train/validation split, so every video gets a ``group`` and the
trainer splits by group. Layouts:

* ``folder``: ``real/`` and ``fake/`` (optionally under ``train/``, ``val/``, ``test/``); group = video stem or the
  first capture group of ``group_regex`` matched against the path relative to the root. A sub-folder of ``fake/``
  names the manipulation method.
* ``csv``: ``filename,label`` rows, with or without a header (see :mod:`.labels` for 0/1). With a header, optional
  ``split``, ``group``, ``original`` and ``method`` columns are used.
* ``ffpp``: FaceForensics++: ``original_sequences/<youtube|actors>/<compression>/videos`` and
  ``manipulated_sequences/<Method>/<compression>/videos``; the official ``train.json``/``val.json``/``test.json``
  split files when given. Group = the connected source ids (``000`` and ``003`` for ``000_003``).
* ``celebdf``: Celeb-real, YouTube-real, Celeb-synthesis and List_of_testing_videos.txt (the official test split).
  Group = the identity whose video it is (``id0`` for ``id0_0000`` and for the fake ``id0_id16_0000``).
* ``dfdc``: ``metadata.json`` per part; group = the original video's name (a real video is its own original).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .labels import OneMeans, parse_label

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
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
LAYOUTS = ("folder", "csv", "ffpp", "celebdf", "dfdc")


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


def _split_name(value: str) -> str:
    return _SPLIT_ALIASES.get(value.strip().lower(), "")


def _videos_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _grouper(group_regex: str | None, dataset: str) -> Callable[[str], str]:
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


# --- folder -------------------------------------------------------------------------------------------------------


def folder_layout(root: Path, dataset: str = "folder", group_regex: str | None = None) -> list[VideoEntry]:
    """``real/`` and ``fake/`` folders (any case), optionally inside ``train/``, ``val/`` or ``test/``."""
    group_of = _grouper(group_regex, dataset)
    entries = []
    for path in _videos_under(root):
        parts = path.relative_to(root).parts
        lowered = [part.lower() for part in parts[:-1]]
        where = next((i for i, part in enumerate(lowered) if part in ("real", "fake")), None)
        if where is None:
            continue
        split = next((_split_name(part) for part in lowered[:where] if _split_name(part)), "")
        label = lowered[where].upper()
        method = parts[where + 1] if label == "FAKE" and len(parts) - 1 > where + 1 else ""
        relpath = _rel(path, root)
        entries.append(VideoEntry(path, relpath, label, dataset, group_of(relpath), split, method))
    if not entries:
        raise LayoutError(f"'{root}' holds no videos under a real/ or fake/ folder (the 'folder' layout).")
    return entries


# --- csv ------------------------------------------------------------------------------------------------------------

_FILE_COLUMNS = ("file", "filename", "path", "video", "name")


def csv_layout(
    csv_path: Path,
    videos_dir: Path | None = None,
    dataset: str = "csv",
    one_means: OneMeans = "REAL",
    group_regex: str | None = None,
) -> list[VideoEntry]:
    """``filename,label`` rows; paths relative to ``videos_dir`` (default: the CSV's folder)."""
    if not csv_path.is_file():
        raise LayoutError(f"'{csv_path}' is not a file: the 'csv' layout reads a CSV of filename,label rows.")
    root = videos_dir or csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if not rows:
        raise LayoutError(f"'{csv_path}' is empty.")
    header: dict[str, int] | None = None
    if len(rows[0]) < 2 or parse_label(rows[0][1], one_means) is None:
        names = [cell.strip().lower() for cell in rows[0]]
        file_column = next((names.index(n) for n in _FILE_COLUMNS if n in names), None)
        if file_column is None or "label" not in names:
            raise LayoutError(
                f"'{csv_path}': the first row is neither a filename,label row nor a header naming a file column "
                f"({', '.join(_FILE_COLUMNS)}) and a label column."
            )
        header = {name: index for index, name in enumerate(names)}
        header["file"] = file_column
        rows = rows[1:]
    group_of = _grouper(group_regex, dataset)

    def cell(row: list[str], name: str, default: int | None = None) -> str:
        index = header.get(name, default) if header else default
        return row[index].strip() if index is not None and index < len(row) else ""

    entries = []
    first_line = 2 if header else 1
    for line, row in enumerate(rows, start=first_line):
        name, raw_label = cell(row, "file", 0), cell(row, "label", 1)
        label = parse_label(raw_label, one_means)
        if not name or label is None:
            raise LayoutError(
                f"'{csv_path}' line {line}: expected a file name and a label REAL, FAKE, 0 or 1, got {row!r}."
            )
        path = (root / name).resolve() if not Path(name).is_absolute() else Path(name)
        relpath = Path(name).as_posix()
        original = cell(row, "original")
        if cell(row, "group"):
            group = f"{dataset}:{cell(row, 'group')}"
        elif original and not group_regex:
            group = f"{dataset}:{Path(original).stem}"
        else:
            group = group_of(relpath)
        entries.append(
            VideoEntry(
                path, relpath, label, dataset, group, _split_name(cell(row, "split")), cell(row, "method"), original
            )
        )
    if not entries:
        raise LayoutError(f"'{csv_path}' has a header but no rows.")
    return entries


# --- FaceForensics++ ------------------------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, items: Iterable[str]) -> None:
        items = list(items)
        for other in items[1:]:
            self.parent[self.find(other)] = self.find(items[0])


def _components(keys: dict[str, list[str]]) -> dict[str, str]:
    """For entries keyed by name with a list of linked ids each, a group name per entry: its connected component."""
    links = _UnionFind()
    for ids in keys.values():
        links.union(ids)
    members: dict[str, set[str]] = {}
    for ids in keys.values():
        for item in ids:
            members.setdefault(links.find(item), set()).add(item)
    names = {root: "+".join(sorted(ids)[:4]) + ("+..." if len(ids) > 4 else "") for root, ids in members.items()}
    return {name: names[links.find(ids[0])] for name, ids in keys.items()}


def _ffpp_ids(stem: str, namespace: str) -> list[str]:
    """Source ids in an FF++ file name: ``000_003`` -> 000, 003; ``01_02__scene__X`` (actors) -> 01, 02."""
    people = stem.split("__", maxsplit=1)[0]
    return [f"{namespace}{part}" for part in people.split("_") if part]


def read_ffpp_splits(folder: Path) -> dict[str, str]:
    """The official FF++ split files (lists of id pairs) -> split per YouTube id."""
    split_of: dict[str, str] = {}
    found = False
    for split in SPLITS:
        path = folder / f"{split}.json"
        if not path.is_file():
            continue
        found = True
        try:
            pairs = json.loads(path.read_text())
            for pair in pairs:
                for video_id in pair:
                    split_of[str(video_id)] = split
        except (ValueError, TypeError) as exc:
            raise LayoutError(f"'{path}' is not an FF++ split file (a JSON list of id pairs): {exc}.") from exc
    if not found:
        raise LayoutError(f"'{folder}' holds none of train.json, val.json, test.json (the official FF++ splits).")
    return split_of


def ffpp_layout(
    root: Path, splits_dir: Path | None = None, compression: str | None = None, dataset: str = "ffpp"
) -> list[VideoEntry]:
    """FaceForensics++ (and its DeepFakeDetection part, whose originals are under ``actors``)."""
    originals, manipulated = root / "original_sequences", root / "manipulated_sequences"
    if not originals.is_dir() and not manipulated.is_dir():
        raise LayoutError(f"'{root}' has neither original_sequences/ nor manipulated_sequences/ (the 'ffpp' layout).")
    split_of = read_ffpp_splits(splits_dir) if splits_dir else {}
    found: list[tuple[Path, str, str, str]] = []  # path, label, method, namespace
    for top, label in ((originals, "REAL"), (manipulated, "FAKE")):
        if not top.is_dir():
            continue
        for kind in sorted(p for p in top.iterdir() if p.is_dir()):
            namespace = "actor" if kind.name in ("actors", "DeepFakeDetection") else ""
            for path in _videos_under(kind):
                parts = path.relative_to(kind).parts
                if compression and compression not in parts:
                    continue
                if "masks" in parts:  # FF++ ships manipulation masks as videos too
                    continue
                found.append((path, label, kind.name if label == "FAKE" else "", namespace))
    if not found:
        detail = f" with compression {compression}" if compression else ""
        raise LayoutError(f"'{root}' has no FF++ videos{detail}.")
    ids = {_rel(path, root): _ffpp_ids(path.stem, namespace) for path, _, _, namespace in found}
    groups = _components(ids)
    entries = []
    for path, label, method, namespace in found:
        relpath = _rel(path, root)
        first = ids[relpath][0] if ids[relpath] else ""
        split = split_of.get(first, "") if not namespace else ""
        original = f"{first}" if label == "FAKE" else ""
        entries.append(
            VideoEntry(path, relpath, label, dataset, f"{dataset}:{groups[relpath]}", split, method, original)
        )
    return entries


# --- Celeb-DF -------------------------------------------------------------------------------------------------------

_CELEB_FOLDERS = {"Celeb-real": "REAL", "YouTube-real": "REAL", "Celeb-synthesis": "FAKE"}


def celebdf_layout(root: Path, dataset: str = "celebdf") -> list[VideoEntry]:
    """Celeb-DF (v1 or v2); List_of_testing_videos.txt, when present, marks the official test videos."""
    present = [name for name in _CELEB_FOLDERS if (root / name).is_dir()]
    if not present:
        raise LayoutError(f"'{root}' has none of {', '.join(_CELEB_FOLDERS)} (the 'celebdf' layout).")
    testing: set[str] = set()
    test_list = root / "List_of_testing_videos.txt"
    if test_list.is_file():
        for line in test_list.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2:
                testing.add(Path(fields[-1]).as_posix())
    entries = []
    for folder in present:
        label = _CELEB_FOLDERS[folder]
        for path in _videos_under(root / folder):
            relpath = _rel(path, root)
            parts = path.stem.split("_")
            if folder == "YouTube-real":
                group, original = f"youtube{path.stem}", ""
            else:
                group = parts[0]  # the identity whose video this is
                original = f"Celeb-real/{parts[0]}_{parts[-1]}.mp4" if label == "FAKE" and len(parts) >= 3 else ""
            split = ("test" if relpath in testing else "train") if testing else ""
            method = "celeb-synthesis" if label == "FAKE" else ""
            entries.append(VideoEntry(path, relpath, label, dataset, f"{dataset}:{group}", split, method, original))
    if not entries:
        raise LayoutError(f"'{root}' has Celeb-DF folders but no videos in them.")
    return entries


# --- DFDC -----------------------------------------------------------------------------------------------------------


def dfdc_layout(root: Path, dataset: str = "dfdc") -> list[VideoEntry]:
    """DFDC parts, each a folder with its videos and a metadata.json ``{name: {label, split, original}}``."""
    metadata_files = sorted(root.rglob("metadata.json"))
    if not metadata_files:
        raise LayoutError(f"'{root}' holds no metadata.json (the 'dfdc' layout reads one per part).")
    entries = []
    for metadata_path in metadata_files:
        try:
            metadata = json.loads(metadata_path.read_text())
            items = sorted(metadata.items())
        except (ValueError, AttributeError) as exc:
            raise LayoutError(f"'{metadata_path}' is not DFDC metadata (a JSON object per video): {exc}.") from exc
        for name, info in items:
            label = parse_label(str((info or {}).get("label", "")), "FAKE")
            if label is None:
                raise LayoutError(f"'{metadata_path}': video '{name}' has no REAL/FAKE label.")
            original = str(info.get("original") or "") if label == "FAKE" else ""
            path = metadata_path.parent / name
            group = Path(original or name).stem
            split = _split_name(str(info.get("split") or ""))
            entries.append(
                VideoEntry(path, _rel(path, root), label, dataset, f"{dataset}:{group}", split, "", original)
            )
    return entries


# --- choosing and sharding ------------------------------------------------------------------------------------------


def read_layout(
    layout: str,
    source: Path,
    *,
    dataset: str | None = None,
    group_regex: str | None = None,
    one_means: OneMeans = "REAL",
    videos_dir: Path | None = None,
    splits_dir: Path | None = None,
    compression: str | None = None,
) -> list[VideoEntry]:
    """The entries of ``source`` read with ``layout``; LayoutError says what does not fit."""
    if layout not in LAYOUTS:
        raise LayoutError(f"Unknown layout '{layout}'; choose one of {', '.join(LAYOUTS)}.")
    if not source.exists():
        raise LayoutError(f"'{source}' does not exist.")
    if layout != "csv" and not source.is_dir():
        raise LayoutError(f"The '{layout}' layout reads a folder; '{source}' is a file.")
    name = dataset or layout
    if layout == "folder":
        return folder_layout(source, name, group_regex)
    if layout == "csv":
        return csv_layout(source, videos_dir, name, one_means, group_regex)
    if layout == "ffpp":
        return ffpp_layout(source, splits_dir, compression, name)
    if layout == "celebdf":
        return celebdf_layout(source, name)
    return dfdc_layout(source, name)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (K from 1 to N) -> (K, N)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise LayoutError(f"--shard takes K/N with whole numbers, e.g. 1/4; got '{text}'.") from exc
    if n < 1 or not 1 <= k <= n:
        raise LayoutError(f"--shard {text}: K must be between 1 and N.")
    return k, n


def in_shard(entry: VideoEntry, k: int, n: int) -> bool:
    """Whether shard K of N takes this video: a hash of its id, so every machine agrees without talking."""
    return int(hashlib.sha1(entry.video_id.encode()).hexdigest(), 16) % n == k - 1
