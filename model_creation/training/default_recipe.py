"""The third default-model recipe: the candidates it measures, the experiments it runs and how it chooses.

One table of candidates (like timm's model table: each entry carries its backbone, crop size and budget), all frame
models trained on the same videos and the same draws of real face photos with their self-blended fakes. Each is
measured on the validation videos it never trained on (the video AUC of real videos against real manipulations),
and the backbone and crop size are chosen on that with a cost term (the test split is not looked at to choose them).
The chosen one is cross-validated at the final budget over every video outside the test split (``FOLDS`` folds by
group, each video scored by the fold model that never saw it), which gives the out-of-fold scores its calibration
and thresholds are fitted on, and trained on every non-test video; sequence models of its backbone start from it.
Leave-one-source-out experiments retrain it without one source and test on all of it. The data, groups and test
split are :mod:`.default_data`'s, the photos :mod:`.default_photos`'.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ml_app.detection.defaults import FRAME_MODEL_LENGTH

from .default_data import HELD_OUT_SOURCES, evenly_spaced, source_of
from .manifest import Manifest, load_manifest

RECIPE = 3
DATASET = "shared-data"
PHOTO_DATASET = "photos"
CLIP_FRAMES = 40
FOLDS = 3  # cross-validation folds by group over the non-test videos


@dataclass(frozen=True)
class Candidate:
    """One model the recipe trains: backbone, crop size, frames per sequence (1: a frame model), epochs, the photo
    faces drawn per epoch (each with its self-blended twin) and, for a frame model, the frames of each video clip an
    epoch (``train_model --frames-per-clip``)."""

    backbone: str
    image_size: int
    length: int
    epochs: int
    photos_per_epoch: int = 0
    frames_per_clip: int = 1
    batch_size: int = 32
    lr: float = 3e-4
    stage: str = "screen"  # screen, final (the chosen frame model at the final budget) or sequence

    @property
    def key(self) -> str:
        frames = "frame" if self.length == FRAME_MODEL_LENGTH else f"{self.length}"
        return f"{self.backbone}_{self.image_size}_{frames}" + ("_final" if self.stage == "final" else "")

    def to_dict(self) -> dict[str, Any]:
        """What shapes the trained model (the stage is only its name), and the key."""
        return {**{k: v for k, v in asdict(self).items() if k != "stage"}, "key": self.key}


# Stage 1: backbone and crop size, screened as frame models with one small budget. In cost order (training time per
# face on the 2-core CPU, bench/bench_backbones.py). EfficientNet-Lite2 and 224-pixel crops are measured there and
# not screened: at 3.5-8 times MobileNetV2-112's cost a frame they fit neither the recipe's 3 hours nor an analysis
# no slower than the first default model's (models/README.md, "Candidates").
# A frame model sees FRAMES_PER_CLIP frames of each 40-frame video clip an epoch (one from each stretch of it), not
# one: with 10, three seeds of the screening model ranked the test split at 0.700 +- 0.034 against 0.574 +- 0.054
# with one (models/README.md, "Frames of each clip"); the video faces, not the photos, are the larger part.
SCREEN_EPOCHS, SCREEN_PHOTOS, FRAMES_PER_CLIP = 3, 500, 10
BACKBONE_CANDIDATES = tuple(
    Candidate(backbone, size, FRAME_MODEL_LENGTH, SCREEN_EPOCHS, SCREEN_PHOTOS, FRAMES_PER_CLIP)
    for backbone, size in (("mobilenet_v2", 112), ("mobilenet_v2", 160), ("efficientnet_lite0", 160))
)
# The chosen frame model's final budget (its cross-validation and the model trained on every non-test video).
FINAL_EPOCHS, FINAL_PHOTOS = 5, 800
# Stage 2, the sequence models of the chosen backbone and size: the shipped lengths, epochs in inverse proportion
# to the frames an epoch costs. They start from the final frame model's trained backbone and train on a few evenly
# spaced windows of each video (photos are single frames: they train frame models only).
SEQUENCE_EPOCHS = {10: 3, 20: 2, 40: 2}
SEQUENCE_BATCH = {10: 8, 20: 4, 40: 2}
SEQUENCE_CLIPS_PER_VIDEO = {10: 4, 20: 3, 40: 2}
# The window a frame model scores a video by on the site: its frames are scored one by one and averaged.
FRAME_WINDOW = 10


def final_frame_candidate(chosen: Candidate) -> Candidate:
    return replace(chosen, epochs=FINAL_EPOCHS, photos_per_epoch=FINAL_PHOTOS, stage="final")


def sequence_candidates(chosen: Candidate, lengths: list[int]) -> list[Candidate]:
    return [
        replace(
            chosen,
            length=length,
            epochs=SEQUENCE_EPOCHS[length],
            batch_size=SEQUENCE_BATCH[length],
            photos_per_epoch=0,
            frames_per_clip=1,
            stage="sequence",
        )
        for length in lengths
    ]


# The choice's cost term. Two runs of one candidate on different machines have differed by up to 0.03 in AUC over
# a few dozen videos, so a difference between two candidates below about 0.04 is noise: a costlier candidate (later
# in the table) is chosen only if it beats every cheaper one by more than that.
CHOICE_MARGIN = 0.04
# What the recipe's training may cost on the 2-core CPU (its 3 hours less about 50 minutes of preprocessing and
# testing), and what the stages after the screening cost in screening runs of the chosen candidate: its final
# cross-validation (three folds, each about twice a screening run's work: more epochs and photos) and final model
# (about 2.4), the three leave-one-source-out runs (one each) and the sequence models (about 2); about 14 in all.
TRAINING_BUDGET_SECONDS = 130 * 60
STAGES_AFTER_SCREENING = 14.0


def choose(validated: dict[str, float], screen_seconds: dict[str, float] | None = None, runs_each: int = 1) -> str:
    """The candidate the rest of the recipe trains, from the screening's AUCs (with repeated seeds: their means) and
    train seconds per run.

    Table order is cost order. A candidate is eligible if it beats every cheaper one by more than
    ``CHOICE_MARGIN`` (the cheapest finished one always is), and affordable if the screening's time (``runs_each``
    runs of every candidate, one per seed) plus ``STAGES_AFTER_SCREENING`` of its own screening runs fit
    ``TRAINING_BUDGET_SECONDS``; the best eligible and affordable one is chosen, or the cheapest when none is
    affordable. A candidate without an AUC (one class) beats none and is beaten by any.
    """
    order = [candidate.key for candidate in BACKBONE_CANDIDATES]
    finished = [key for key in order if key in validated]
    if not finished:
        raise ValueError("No backbone candidate has finished; nothing to choose from.")

    def auc(key: str) -> float:
        value = validated[key]
        return value if math.isfinite(value) else -math.inf

    eligible = [
        key
        for index, key in enumerate(finished)
        if all(auc(key) > auc(cheaper) + CHOICE_MARGIN for cheaper in finished[:index])
    ]
    if screen_seconds is not None:
        spent = runs_each * sum(screen_seconds.get(key, 0.0) for key in finished)
        affordable = [
            key
            for key in eligible
            if spent + STAGES_AFTER_SCREENING * screen_seconds.get(key, 0.0) <= TRAINING_BUDGET_SECONDS
        ]
        eligible = affordable or eligible[:1]
    return max(eligible, key=lambda key: (auc(key), -order.index(key)))


# Screening runs per candidate, each with its own seed (and so its own validation draw): one run's held-out AUC moved
# from 0.30 to 0.71 with the seed alone (models/README.md, "Seeds: how much one run says"), ten times CHOICE_MARGIN.
SCREEN_SEEDS = 3


def screen_seeds(first: int, count: int) -> list[int]:
    """The seeds of a candidate's repeated screening runs: ``--seed`` and the ones after it."""
    if count < 1:
        raise ValueError(f"--screen-seeds must be at least 1, not {count}.")
    return [first + offset for offset in range(count)]


def seed_spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One candidate's screening runs with different seeds: each seed's held-out and test video AUC, their means
    and standard deviations (what one run's difference between two candidates must be judged against)."""

    def spread(values: list[float]) -> dict[str, Any]:
        finite = [value for value in values if math.isfinite(value)]
        mean = sum(finite) / len(finite) if finite else math.nan
        sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)) if len(finite) > 1 else math.nan
        return {"each": values, "mean": mean, "sd": sd}

    return {
        "seeds": [run["seed"] for run in runs],
        "held_out_auc": spread([float(run["held_out"]["auc"]) for run in runs]),
        "test_auc": spread([float(run["test"]["overall"]["video"].get("auc", math.nan)) for run in runs]),
        "train_seconds": [run["train_seconds"] for run in runs],
    }


# --- experiments: which videos train and which test ------------------------------------------------------------------

FIXED = "fixed"


def experiments() -> list[str]:
    """The fixed split, then one experiment per held-out source (``without_<source>``)."""
    return [FIXED, *(f"without_{source}" for source in HELD_OUT_SOURCES)]


def held_out(experiment: str) -> str | None:
    return experiment.removeprefix("without_") if experiment != FIXED else None


def experiment_split(experiment: str, group: str, split: str) -> str:
    """A video's split in an experiment: the fixed split as preprocessed, or test for every video of the held-out
    source and train for every other (the fixed test videos of other sources included: this model is not shipped)."""
    source = held_out(experiment)
    if source is None:
        return split
    return "test" if source_of(group) == source else "train"


def experiment_manifest(full: Path, experiment: str, target: Path, clips_per_video: int = 0) -> Path:
    """A manifest of ``full``'s clips with the experiment's splits, written to ``target`` (clip paths relative to
    it); the clips themselves are not copied. With ``clips_per_video``, training and validation videos keep that
    many evenly spaced clips (test videos keep all, so every model is tested on the same clips)."""
    manifest = load_manifest(full)
    target.parent.mkdir(parents=True, exist_ok=True)
    root = target.parent.resolve()
    videos = []
    for video in manifest.videos:
        video.split = experiment_split(experiment, video.group, video.split)
        if clips_per_video and video.split != "test":
            video.clips = [video.clips[index] for index in evenly_spaced(len(video.clips), clips_per_video)]
        for clip in video.clips:
            clip.file = os.path.relpath((manifest.root / clip.file).resolve(), root)
        videos.append(video)
    Manifest(
        preprocessing=manifest.preprocessing,
        sequence_length=manifest.sequence_length,
        max_windows=manifest.max_windows,
        videos=videos,
        root=root,
        sources=[*manifest.sources, {"experiment": experiment, "from": str(full), "clips_per_video": clips_per_video}],
        media=manifest.media,
    ).save(target)
    return target
