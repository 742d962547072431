"""Which clips a training run learns from and is validated on, and the loaders that feed them.

Owns reading the manifest for a run, the group-aware split, self-blended fakes, the class weights, the samplers (a
DistributedSampler per rank, or :class:`WeightedEpochSampler` for ``--balance sampler``), the DataLoaders, the
normalisation the run's backbone expects, and the dataset statistics printed before the first epoch.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ml_app.detection.network import backbone_preprocessing
from ml_app.detection.preprocessing import Preprocessing

from .augment import AugmentSettings
from .config import TrainConfig, TrainError
from .dataset import ClipDataset, ClipItem, frames_of_each_clip, scoring_length, with_self_blended
from .distributed import Distributed
from .evaluate import usable_items
from .manifest import Manifest, load_manifest
from .options import crop_differences
from .photo_draw import PhotoDrawSampler, photo_groups
from .splits import TEST, TRAIN, VAL, SplitError, SplitResult, assign_splits
from .statistics import of_photos, statistics_table
from .training_inputs import cache_crops, degrade_settings


class WeightedEpochSampler(Sampler[int]):
    """Draws (with replacement) by weight, the same draw on every rank, each rank taking its slice."""

    def __init__(self, weights: list[float], rank: int, world_size: int, seed: int):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0
        self.per_rank = math.ceil(len(weights) / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.per_rank * self.world_size, replacement=True, generator=generator)
        return iter(drawn[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank


@dataclass
class TrainingData:
    """Everything a run knows about its data once it is loaded."""

    manifest: Manifest
    preprocessing: Preprocessing  # the manifest's crops, normalised as the backbone expects: what checkpoints record
    sequence_length: int  # the model's (1 for a frame model)
    val_length: int  # frames per validation clip: the sequence length, or a frame model's whole clip
    split: SplitResult
    counts: dict[str, dict[str, int]]  # clips per split and label, before self-blending
    synthesized: dict[str, int]  # self-blended fakes added per split
    train_set: ClipDataset
    val_set: ClipDataset
    val_items: list[ClipItem]
    class_weights: torch.Tensor
    train_sampler: WeightedEpochSampler | DistributedSampler | PhotoDrawSampler
    train_loader: DataLoader
    val_loader: DataLoader
    extra: list[Manifest] = field(default_factory=list)  # the --extra-train manifests

    @property
    def fingerprint(self) -> str | None:
        """What a resumed run must find again: the manifest's sha256, combined with the extra manifests' if any."""
        if not self.extra:
            return self.manifest.sha256
        shas = [self.manifest.sha256 or "", *(extra.sha256 or "" for extra in self.extra)]
        return hashlib.sha256("+".join(shas).encode()).hexdigest()


def load_extra_manifests(config: TrainConfig, manifest: Manifest) -> list[Manifest]:
    """The ``--extra-train`` manifests, checked against the run's: the same crops (all but the normalisation) and
    clips at least as long as the model's sequence, or TrainError naming the difference."""
    length = 1 if config.frame_model else config.sequence_length or manifest.sequence_length
    extras = []
    for path in config.extra_train:
        try:
            extra = load_manifest(path)
        except ValueError as exc:
            raise TrainError(f"--extra-train: {exc}") from exc
        differences = crop_differences(extra.preprocessing, manifest.preprocessing)
        if differences:
            raise TrainError(
                f"--extra-train '{extra.path}' was cropped with other settings than '{manifest.path}' "
                f"({', '.join(differences)} differ): preprocess it with the same crop flags."
            )
        if extra.sequence_length < length:
            what = "photos (one frame each)" if extra.media == "images" else f"{extra.sequence_length}-frame clips"
            raise TrainError(
                f"--extra-train '{extra.path}' holds {what}; a {length}-frame model needs clips of at least "
                f"{length} frames (photos train frame models: --frame-model)."
            )
        extras.append(extra)
    return extras


def extra_training_items(extras: list[Manifest], manifest: Manifest) -> list[ClipItem]:
    """The usable clips of ``extras`` as training items (split train, clip paths made absolute, so the run's
    dataset reads them from their own folders). They never validate: the epoch that is kept, the calibration and
    the thresholds stay the main manifest's videos'. Records an extra manifest puts in its validation or test split
    (a person's photos held out, say) are left out of training altogether. A video id met twice is a TrainError."""
    seen = {video.video_id for video in manifest.videos}
    items: list[ClipItem] = []
    for extra in extras:
        for video in extra.videos:
            if video.split in (VAL, TEST):
                continue
            if video.video_id in seen:
                raise TrainError(
                    f"--extra-train '{extra.path}' repeats video '{video.video_id}' (already in another manifest)."
                )
            seen.add(video.video_id)
            clips = [replace(clip, file=str((extra.root / clip.file).resolve())) for clip in video.clips]
            found = usable_items([replace(video, split=TRAIN, clips=clips)])
            items.extend(replace(item, photo=extra.media == "images") for item in found)
    return items


def _items_per_split(config: TrainConfig, manifest: Manifest, say: Callable[[str], None], extras: list[Manifest]):
    videos = [video for video in manifest.videos if video.status == "ok" and video.clips]
    if not videos:
        raise TrainError(f"'{manifest.path}' has no video with face clips to train on.")
    try:
        split = assign_splits(
            videos, config.val_fraction, config.seed, config.use_manifest_split, folds=config.folds, fold=config.fold
        )
    except SplitError as exc:
        raise TrainError(str(exc)) from exc
    if split.leaking_groups:
        say(
            f"warning: the manifest's own split puts {len(split.leaking_groups)} group(s) on more than one "
            f"side (e.g. {', '.join(split.leaking_groups[:3])}); pass --ignore-manifest-split to split by "
            "group instead."
        )
    items = {name: usable_items(split.videos(videos, name)) for name in (TRAIN, VAL)}
    counts = split.counts(videos)
    extra_items = extra_training_items(extras, manifest)
    items[TRAIN] += extra_items
    counts[TRAIN] = dict(sorted((Counter(counts[TRAIN]) + Counter(i.video.label for i in extra_items)).items()))
    synthesized = {TRAIN: 0, VAL: 0}
    if config.synthesize_fakes == "sbi":
        for name in (TRAIN, VAL):
            before = len(items[name])
            items[name] = with_self_blended(items[name])
            synthesized[name] = len(items[name]) - before
    for name in (TRAIN, VAL):
        labels = Counter(item.video.label for item in items[name])
        if name == TRAIN and len(labels) < 2:
            raise TrainError(f"The training split has only {dict(labels)}: both REAL and FAKE clips are needed.")
        if not items[name] and not (name == VAL and config.val_fraction == 0.0 and not config.folds):
            raise TrainError(f"The {name} split is empty.")
    return split, counts, items, synthesized


def items_per_split(
    config: TrainConfig, manifest: Manifest
) -> tuple[dict[str, list[ClipItem]], dict[str, dict[str, int]]]:
    """The clips of each split exactly as a run with ``config`` draws them (self-blended fakes and --extra-train
    clips included), and the clip counts per split and label before self-blending (what a checkpoint records as
    ``training["clips"]``)."""
    extras = load_extra_manifests(config, manifest)
    _, counts, items, _ = _items_per_split(config, manifest, lambda message: None, extras)
    return items, counts


def _train_sampler(
    config: TrainConfig, dist: Distributed, train_set: ClipDataset, say: Callable[[str], None]
) -> tuple[WeightedEpochSampler | DistributedSampler | PhotoDrawSampler, torch.Tensor]:
    """The training sampler (``--balance sampler``'s weighted draw, a fresh draw of photo faces each epoch with
    ``--photos-per-epoch``, or every clip shuffled) and the class weights of the loss: each class's share of what
    an epoch is expected to hold, so that drawing part of the photos does not tilt the balance."""
    targets = train_set.targets()
    always, groups = photo_groups(train_set.items)
    drawn = config.photos_per_epoch and groups and config.balance != "sampler"
    sampler: WeightedEpochSampler | DistributedSampler | PhotoDrawSampler
    if drawn:
        sampler = PhotoDrawSampler(always, groups, config.photos_per_epoch, config.seed, dist.rank, dist.world_size)
        inclusion = sampler.inclusion()
        say(f"Each epoch draws {sampler.per_epoch} of the {len(groups)} photo faces (with their twins) afresh.")
    weight = [inclusion if drawn and item.photo else 1.0 for item in train_set.items]
    per_class = [sum(w for w, t in zip(weight, targets, strict=True) if t == c) for c in range(2)]
    total = sum(per_class)
    class_weights = torch.tensor([total / (2 * n) if n else 0.0 for n in per_class], dtype=torch.float32)
    if drawn:
        return sampler, class_weights
    if config.balance == "sampler":
        counts = Counter(targets)
        sampler = WeightedEpochSampler([1.0 / counts[t] for t in targets], dist.rank, dist.world_size, config.seed)
    else:
        sampler = DistributedSampler(
            train_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=config.seed
        )
    return sampler, class_weights


def load_training_data(config: TrainConfig, dist: Distributed, say: Callable[[str], None]) -> TrainingData:
    """Read the manifest, split it, and build this rank's datasets, samplers and loaders; TrainError says why not."""
    try:
        manifest = load_manifest(config.manifest)
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    length = config.sequence_length or manifest.sequence_length
    if length > manifest.sequence_length:
        raise TrainError(
            f"--sequence-length {length} is longer than the manifest's clips ({manifest.sequence_length} frames); "
            "preprocess with a longer --sequence-length."
        )
    extras = load_extra_manifests(config, manifest)
    split, counts, items, synthesized = _items_per_split(config, manifest, say, extras)
    say("Clips per split and class:\n" + statistics_table({TRAIN: items[TRAIN], VAL: items[VAL]}, of_photos(manifest)))
    prep = backbone_preprocessing(manifest.preprocessing, config.backbone)
    if (prep.mean, prep.std) != (manifest.preprocessing.mean, manifest.preprocessing.std):
        say(
            f"Normalising the crops as {config.backbone} expects: mean {prep.mean}, std {prep.std} (the manifest's "
            f"are {manifest.preprocessing.mean}, {manifest.preprocessing.std}); the checkpoints record it."
        )
    augment = AugmentSettings.for_training(config.augment, config.reencode)
    random_start = True if config.frame_model else None  # a frame model: a random frame of each clip (or stretch)
    degrade = degrade_settings(config, manifest, items[TRAIN], say)
    train_items = frames_of_each_clip(items[TRAIN], config.frames_per_clip)
    if config.frames_per_clip > 1:
        say(f"Each epoch takes {config.frames_per_clip} frames of each video clip, one from each stretch of it.")
    train_set = ClipDataset(manifest, train_items, length, augment, config.seed, prep, random_start, degrade)
    val_length = scoring_length(config.frame_model, length, manifest)
    val_set = ClipDataset(manifest, items[VAL], val_length, None, config.seed, prep)
    if config.cache_crops:
        cache_crops([*items[TRAIN], *items[VAL]], manifest, say)
    train_sampler, class_weights = _train_sampler(config, dist, train_set, say)
    val_sampler: DistributedSampler = DistributedSampler(
        val_set, num_replicas=dist.world_size, rank=dist.rank, shuffle=False
    )
    pin = dist.device.type == "cuda"
    train_loader = DataLoader(
        train_set, config.batch_size, sampler=train_sampler, num_workers=config.workers, pin_memory=pin
    )
    val_loader = DataLoader(val_set, config.batch_size, sampler=val_sampler, num_workers=config.workers, pin_memory=pin)
    return TrainingData(
        manifest=manifest,
        preprocessing=prep,
        sequence_length=length,
        val_length=val_length,
        split=split,
        counts=counts,
        synthesized=synthesized,
        train_set=train_set,
        val_set=val_set,
        val_items=items[VAL],
        class_weights=class_weights,
        train_sampler=train_sampler,
        train_loader=train_loader,
        val_loader=val_loader,
        extra=extras,
    )
