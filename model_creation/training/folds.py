"""Cross-validation folds by group (``train_model --folds K``): which fold validates each group of videos.

Whole groups (a source video with its fakes, one identity: the manifest's ``group``) go to one fold, so no group is
ever on both sides. The manifest's test videos stay out of every fold; a dataset's own validation split is pooled
with its training split. Folds are balanced by class as far as the groups allow: the groups, largest first (ties in
an order shuffled by the seed), each go to the fold where the classes' shares stay the most even, an empty fold
first. The same videos and seed give the same folds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .manifest import VideoRecord

TEST = "test"


class FoldError(ValueError):
    """Folds that cannot be made; the message says why."""


def clips_per_group(videos: Sequence[VideoRecord]) -> dict[str, Counter]:
    """Clips per label of every group of non-test videos."""
    groups: dict[str, Counter] = {}
    for video in videos:
        if video.split != TEST:
            groups.setdefault(video.group, Counter())[video.label] += len(video.clips)
    return groups


def _cost(fold: Counter, group: Counter, totals: Counter) -> float:
    """How uneven the classes' shares of this fold would be with ``group`` in it (sum of squared shares)."""
    return sum(((fold[label] + group[label]) / totals[label]) ** 2 for label in totals if totals[label])


def assign_folds(videos: Sequence[VideoRecord], folds: int, seed: int = 0) -> dict[str, int]:
    """Group -> fold (1..folds) for the non-test videos; FoldError with fewer groups than folds."""
    if folds < 2:
        raise FoldError("--folds must be at least 2 (one model is trained per fold); leave it out for one run.")
    groups = clips_per_group(videos)
    if len(groups) < folds:
        raise FoldError(
            f"--folds {folds} needs at least {folds} groups of videos outside the test split; the manifest has "
            f"{len(groups)} (videos linked by source or identity always stay together): use fewer folds."
        )
    totals: Counter[str] = Counter()
    for counter in groups.values():
        totals.update(counter)
    order = sorted(groups)
    np.random.default_rng(seed).shuffle(order)
    order.sort(key=lambda name: -sum(groups[name].values()))  # stable: the shuffle breaks ties
    contents: list[Counter[str]] = [Counter() for _ in range(folds)]
    members = [0] * folds
    fold_of: dict[str, int] = {}
    for name in order:
        empty = [index for index in range(folds) if not members[index]]
        candidates = empty or range(folds)
        best = min(candidates, key=lambda index: (_cost(contents[index], groups[name], totals), members[index]))
        contents[best].update(groups[name])
        members[best] += 1
        fold_of[name] = best + 1
    return fold_of


def fold_table(videos: Sequence[VideoRecord], fold_of: dict[str, int], folds: int) -> dict[int, dict[str, int]]:
    """Validation clips per label of every fold."""
    table: dict[int, Counter] = {index: Counter() for index in range(1, folds + 1)}
    for video in videos:
        if video.group in fold_of and video.split != TEST:
            table[fold_of[video.group]][video.label] += len(video.clips)
    return {index: dict(sorted(counter.items())) for index, counter in table.items()}
