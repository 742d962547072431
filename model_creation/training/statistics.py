"""What a dataset holds, per split and class, as a table with warnings: printed by ``train_model`` before its first
epoch (:func:`statistics_table`: videos or images and clips of the manifest's split) and by ``preprocess_videos`` and
``preprocess_images`` before they start (:func:`entries_table`: the layout's videos or images, by their dataset
split). Both list the fakes' manipulation methods and warn about a class under ``RARE_SHARE`` of a split (clips
in training, videos or images before preprocessing): a model trained or validated on it mostly sees the other class,
and its accuracy says little.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .manifest import Manifest

if TYPE_CHECKING:  # the table only reads the items: no torch for the preprocessing commands that print it
    from .dataset import ClipItem
    from .layouts import VideoEntry

RARE_SHARE = 0.10
LABELS = ("REAL", "FAKE")
SPLIT_ORDER = ("train", "val", "test")
NO_SPLIT = "-"  # the row of entries their dataset gives no split


@dataclass
class SplitStatistics:
    """One split: distinct videos and clips per class, and fakes per manipulation method (clips when counting clips,
    videos when counting a layout's entries)."""

    videos: Counter[str] = field(default_factory=Counter)
    clips: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)

    def rare_classes(self, counts: Counter[str] | None = None) -> list[str]:
        """Classes with fewer than RARE_SHARE of ``counts`` (the clips by default; none present counts too)."""
        counts = self.clips if counts is None else counts
        total = sum(counts.values())
        return [label for label in LABELS if total and counts[label] < RARE_SHARE * total]


def split_statistics(items: Iterable[ClipItem]) -> SplitStatistics:
    stats = SplitStatistics()
    seen: set[str] = set()
    for item in items:
        label = item.video.label
        stats.clips[label] += 1
        if item.video.video_id not in seen:
            seen.add(item.video.video_id)
            stats.videos[label] += 1
        if label == "FAKE" and item.video.method:
            stats.methods[item.video.method] += 1
    return stats


def entry_statistics(entries: Iterable[VideoEntry]) -> SplitStatistics:
    """Videos (or images) per class and fakes per method, of a layout's entries (no clips yet)."""
    stats = SplitStatistics()
    for entry in entries:
        stats.videos[entry.label] += 1
        if entry.label == "FAKE" and entry.method:
            stats.methods[entry.method] += 1
    return stats


def of_photos(manifest: Manifest) -> bool:
    """A manifest of photos (``media`` "images", or every record one frame without a frame rate): the table then
    counts images, not videos."""
    if getattr(manifest, "media", "") == "images":
        return True
    videos = [video for video in manifest.videos if video.clips]
    return bool(videos) and all(video.frame_count <= 1 and not video.fps for video in videos)


def _methods(split: SplitStatistics) -> str:
    return ", ".join(f"{method} {count}" for method, count in sorted(split.methods.items()))


def _rare_warnings(stats: dict[str, SplitStatistics], counted: str, clips: bool) -> list[str]:
    lines = []
    for name, split in stats.items():
        counts = split.clips if clips else split.videos
        where = f"the {name} split" if name != NO_SPLIT else "those without a split"
        for label in split.rare_classes(counts):
            lines.append(
                f"warning: {label} is {counts[label]} of the {sum(counts.values())} {counted} of {where}, under "
                f"{RARE_SHARE:.0%}: its metrics rest on few examples of that class."
            )
    return lines


def _table(stats: dict[str, SplitStatistics], unit: str, clips: bool) -> list[str]:
    """Rows per split and class: the videos or images, with ``clips`` also the clips; the share of the split (of its
    clips, or of its videos), and the fakes' methods."""
    header = f"{'split':<8} {'class':<6} {unit:>8} " + (f"{'clips':>8} " if clips else "") + f"{'share':>6}  methods"
    lines = [header, "-" * len(header)]
    for name, split in stats.items():
        counted = split.clips if clips else split.videos
        total = sum(counted.values())
        for label in LABELS:
            share = counted[label] / total if total else 0.0
            clip_cell = f"{split.clips[label]:>8} " if clips else ""
            lines.append(
                f"{name:<8} {label:<6} {split.videos[label]:>8} {clip_cell}{share:>6.0%}  "
                + (_methods(split) if label == "FAKE" else "")
            )
    return lines


def statistics_table(splits: dict[str, list[ClipItem]], photos: bool = False) -> str:
    """The table and its warnings, as lines of text; ``photos`` counts images instead of videos."""
    stats = {name: split_statistics(items) for name, items in splits.items()}
    lines = _table(stats, "images" if photos else "videos", clips=True) + _rare_warnings(stats, "clips", clips=True)
    return "\n".join(line.rstrip() for line in lines)


def _split_key(name: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(name), "") if name in SPLIT_ORDER else (len(SPLIT_ORDER), name)


def entries_table(entries: Sequence[VideoEntry], photos: bool = False) -> str:
    """The layout's entries per split (the dataset's own; ``-`` where it gives none) and class, each class's share
    of the split, the fakes' methods, a total row and the warnings; ``photos`` counts images instead of videos."""
    by_split: dict[str, list[VideoEntry]] = {}
    for entry in entries:
        by_split.setdefault(entry.split or NO_SPLIT, []).append(entry)
    stats = {name: entry_statistics(by_split[name]) for name in sorted(by_split, key=_split_key)}
    unit = "images" if photos else "videos"
    lines = _table(stats, unit, clips=False)
    lines.append(f"{'all':<8} {'':<6} {sum(entry_statistics(entries).videos.values()):>8}")
    lines += _rare_warnings(stats, unit, clips=False)
    return "\n".join(line.rstrip() for line in lines)
