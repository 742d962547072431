"""The ``ffpp`` layout: FaceForensics++ (and its DeepFakeDetection part), with the official split files.

``original_sequences/<youtube|actors>/<compression>/videos`` and ``manipulated_sequences/<Method>/<compression>/
videos``; a video's group is the connected component of the source ids in its name (``000`` and ``003`` for
``000_003``), so a source video and every fake made from it stay on one side of a split.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .common import SPLITS, LayoutError, VideoEntry, relative, videos_under


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
            for path in videos_under(kind):
                parts = path.relative_to(kind).parts
                if compression and compression not in parts:
                    continue
                if "masks" in parts:  # FF++ ships manipulation masks as videos too
                    continue
                found.append((path, label, kind.name if label == "FAKE" else "", namespace))
    if not found:
        detail = f" with compression {compression}" if compression else ""
        raise LayoutError(f"'{root}' has no FF++ videos{detail}.")
    ids = {relative(path, root): _ffpp_ids(path.stem, namespace) for path, _, _, namespace in found}
    groups = _components(ids)
    entries = []
    for path, label, method, namespace in found:
        relpath = relative(path, root)
        first = ids[relpath][0] if ids[relpath] else ""
        split = split_of.get(first, "") if not namespace else ""
        original = f"{first}" if label == "FAKE" else ""
        entries.append(
            VideoEntry(path, relpath, label, dataset, f"{dataset}:{groups[relpath]}", split, method, original)
        )
    return entries
