"""What a training run is about to learn from, printed before its first epoch: per split and class the videos (or
images) and clips, the manipulation methods, and a warning for a class that is under ``RARE_SHARE`` of a split's
clips (a model trained or validated on it mostly sees the other class, and its accuracy says little).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .dataset import ClipItem
from .manifest import Manifest

RARE_SHARE = 0.10
LABELS = ("REAL", "FAKE")


@dataclass
class SplitStatistics:
    """One split: distinct videos and clips per class, and fake clips per manipulation method."""

    videos: Counter[str] = field(default_factory=Counter)
    clips: Counter[str] = field(default_factory=Counter)
    methods: Counter[str] = field(default_factory=Counter)

    def rare_classes(self) -> list[str]:
        """Classes with fewer than RARE_SHARE of the split's clips (none present counts too)."""
        total = sum(self.clips.values())
        return [label for label in LABELS if total and self.clips[label] < RARE_SHARE * total]


def split_statistics(items: list[ClipItem]) -> SplitStatistics:
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


def of_photos(manifest: Manifest) -> bool:
    """A manifest of photos (``media`` "images", or every record one frame without a frame rate): the table then
    counts images, not videos."""
    if getattr(manifest, "media", "") == "images":
        return True
    videos = [video for video in manifest.videos if video.clips]
    return bool(videos) and all(video.frame_count <= 1 and not video.fps for video in videos)


def statistics_table(splits: dict[str, list[ClipItem]], photos: bool = False) -> str:
    """The table and its warnings, as lines of text; ``photos`` counts images instead of videos."""
    stats = {name: split_statistics(items) for name, items in splits.items()}
    unit = "images" if photos else "videos"
    header = f"{'split':<8} {'class':<6} {unit:>8} {'clips':>8} {'share':>6}  methods"
    lines = [header, "-" * len(header)]
    for name, split in stats.items():
        total = sum(split.clips.values())
        for label in LABELS:
            share = split.clips[label] / total if total else 0.0
            methods = ", ".join(f"{method} {count}" for method, count in sorted(split.methods.items()))
            lines.append(
                f"{name:<8} {label:<6} {split.videos[label]:>8} {split.clips[label]:>8} {share:>6.0%}  "
                + (methods if label == "FAKE" else "")
            )
    for name, split in stats.items():
        for label in split.rare_classes():
            lines.append(
                f"warning: {label} is {split.clips[label]} of the {sum(split.clips.values())} clips of the {name} "
                f"split, under {RARE_SHARE:.0%}: its metrics rest on few examples of that class."
            )
    return "\n".join(line.rstrip() for line in lines)
