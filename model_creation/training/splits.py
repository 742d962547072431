"""Train / validation / test assignment by group, so no source video, its fakes or one identity straddle a split.

The dataset's own split (FF++'s split files, Celeb-DF's test list) is used when the manifest has one; otherwise whole
groups are drawn for validation, class by class, until each class has about ``val_fraction`` of its clips there.
Test videos never reach training. Groups that a dataset's official split puts on both sides are reported. In
cross-validation (``folds``) the validation part is one fold of groups (:mod:`.folds`) and training the others.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .folds import FoldError, assign_folds
from .manifest import VideoRecord

TRAIN, VAL, TEST = "train", "val", "test"


class SplitError(ValueError):
    pass


@dataclass
class SplitResult:
    split_of: dict[str, str]  # video id -> train, val or test
    source: str  # "manifest" or "groups"
    leaking_groups: list[str] = field(default_factory=list)

    def videos(self, videos: list[VideoRecord], split: str) -> list[VideoRecord]:
        return [video for video in videos if self.split_of.get(video.video_id) == split]

    def counts(self, videos: list[VideoRecord]) -> dict[str, dict[str, int]]:
        """Clips per split and label."""
        table: dict[str, Counter] = {TRAIN: Counter(), VAL: Counter(), TEST: Counter()}
        for video in videos:
            table[self.split_of[video.video_id]][video.label] += len(video.clips)
        return {split: dict(sorted(counter.items())) for split, counter in table.items()}


def _leaks(videos: list[VideoRecord], split_of: dict[str, str]) -> list[str]:
    sides: dict[str, set[str]] = {}
    for video in videos:
        sides.setdefault(video.group, set()).add(split_of[video.video_id])
    return sorted(group for group, found in sides.items() if len(found) > 1)


def fold_split(videos: list[VideoRecord], folds: int, fold: int, seed: int = 0) -> SplitResult:
    """Fold ``fold`` (1..folds) of ``folds`` validates, the other folds train, the manifest's test videos stay out."""
    try:
        fold_of = assign_folds(videos, folds, seed)
    except FoldError as exc:
        raise SplitError(str(exc)) from exc
    split_of = {
        video.video_id: TEST if video.split == TEST else VAL if fold_of[video.group] == fold else TRAIN
        for video in videos
    }
    return SplitResult(split_of, f"fold {fold} of {folds}, by group", _leaks(videos, split_of))


def assign_splits(
    videos: list[VideoRecord],
    val_fraction: float = 0.15,
    seed: int = 0,
    use_manifest: bool = True,
    folds: int = 0,
    fold: int = 0,
) -> SplitResult:
    """Split the usable videos of a manifest (those with clips); with ``folds``, by fold (:func:`fold_split`)."""
    if folds:
        return fold_split(videos, folds, fold, seed)
    if val_fraction == 0.0:  # every non-test video trains (e.g. the final model after cross-validation)
        split_of = {video.video_id: TEST if use_manifest and video.split == TEST else TRAIN for video in videos}
        return SplitResult(split_of, "none (every non-test video trains)", [])
    if not 0.0 < val_fraction < 1.0:
        raise SplitError("--val-fraction must be between 0 (no validation) and 1.")
    if use_manifest and any(video.split == VAL for video in videos):
        split_of = {video.video_id: video.split if video.split in (VAL, TEST) else TRAIN for video in videos}
        return SplitResult(split_of, "manifest", _leaks(videos, split_of))
    split_of = {video.video_id: TEST if use_manifest and video.split == TEST else TRAIN for video in videos}
    pool = [video for video in videos if split_of[video.video_id] == TRAIN]
    clips_per_group: dict[str, Counter] = {}
    for video in pool:
        clips_per_group.setdefault(video.group, Counter())[video.label] += len(video.clips)
    if len(clips_per_group) < 2:
        raise SplitError(
            f"The training videos form {len(clips_per_group)} group(s); a validation set needs at least two groups "
            "(videos linked by source or identity always stay together)."
        )
    val_groups = _validation_groups(clips_per_group, val_fraction, seed)
    for video in pool:
        if video.group in val_groups:
            split_of[video.video_id] = VAL
    return SplitResult(split_of, "groups", _leaks(videos, split_of))


def _validation_groups(clips_per_group: dict[str, Counter], val_fraction: float, seed: int) -> set[str]:
    """Whole groups, drawn in a seeded order, until each class has about ``val_fraction`` of its clips."""
    totals: Counter[str] = Counter()
    for counter in clips_per_group.values():
        totals.update(counter)
    order = sorted(clips_per_group)
    np.random.default_rng(seed).shuffle(order)
    in_val: Counter = Counter()
    val_groups: set[str] = set()
    left_for_training = Counter(label for counter in clips_per_group.values() for label in counter)  # groups per label
    for label in sorted(totals, key=lambda name: totals[name]):  # the rarer class first
        target = val_fraction * totals[label]
        for group in order:
            if in_val[label] >= target:
                break
            labels_in_group = [name for name, count in clips_per_group[group].items() if count]
            if group in val_groups or label not in labels_in_group:
                continue
            if any(left_for_training[name] <= 1 for name in labels_in_group):
                continue  # training keeps at least one group of every class
            val_groups.add(group)
            in_val.update(clips_per_group[group])
            left_for_training.subtract(labels_in_group)
    return val_groups
