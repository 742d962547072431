"""Thousands of photo faces within a training budget: each epoch sees every video clip and a fresh draw of photos.

A run with ``--photos-per-epoch N`` trains every epoch on all of its video clips (and their self-blended twins) and on
N photo faces drawn anew for that epoch, each with its own self-blended twin: the real face and the fake made from
it in the same epoch, so the only difference between the two is the blend. Over the epochs the draws cover more
faces than one epoch could hold; :meth:`PhotoDrawSampler.faces_seen` says how many distinct ones a run saw. The draw
is the same on every rank (seeded by the seed and the epoch), each rank taking its slice, as DistributedSampler does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from .dataset import ClipItem


def photo_groups(items: Sequence[ClipItem]) -> tuple[list[int], list[list[int]]]:
    """The indices of the items that are always trained on (video clips and their twins), and per photo face the
    indices of the face and its self-blended twin (or the face alone)."""
    always: list[int] = []
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if not item.photo:
            always.append(index)
            continue
        source = item.video.video_id.removesuffix("#sbi")  # a self-blended twin is its source's video with #sbi
        groups.setdefault(f"{source}/{item.clip.file}", []).append(index)
    return always, [groups[key] for key in sorted(groups)]


class PhotoDrawSampler(Sampler[int]):
    """All of ``always`` plus ``per_epoch`` of ``groups`` (each group whole), shuffled, per epoch."""

    def __init__(
        self, always: list[int], groups: list[list[int]], per_epoch: int, seed: int, rank: int = 0, world_size: int = 1
    ):
        self.always, self.groups = always, groups
        self.per_epoch = min(per_epoch, len(groups)) if per_epoch else len(groups)
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0
        drawn = len(always) + sum(sorted((len(group) for group in groups), reverse=True)[: self.per_epoch])
        self.per_rank = math.ceil(drawn / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def draw(self, epoch: int) -> list[int]:
        """The photo groups (their positions in ``groups``) drawn for ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.groups), generator=generator)[: self.per_epoch].tolist()

    def __iter__(self) -> Iterator[int]:
        indices = list(self.always) + [index for chosen in self.draw(self.epoch) for index in self.groups[chosen]]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 7919)
        order = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
        total = self.per_rank * self.world_size
        order += order[: total - len(order)]  # pad to a multiple of the ranks, as DistributedSampler does
        return iter(order[self.rank : total : self.world_size])

    def __len__(self) -> int:
        return self.per_rank

    def faces_seen(self, epochs: int) -> int:
        """Distinct photo faces drawn in the first ``epochs`` epochs."""
        return len({chosen for epoch in range(epochs) for chosen in self.draw(epoch)})

    def inclusion(self) -> float:
        """The share of the photo faces an epoch draws."""
        return self.per_epoch / len(self.groups) if self.groups else 0.0
