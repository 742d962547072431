"""The second default-model recipe: the candidates it measures, the experiments it runs and how it chooses.

One table of candidates (like timm's model table: each entry carries its backbone, crop size, frames and epochs),
measured on the same data; the backbone and crop size are chosen among frame models by validation AUC (the test
split is not looked at to choose), then sequence models of that backbone are trained for the shipped lengths.
Leave-one-source-out experiments retrain the chosen configuration without one source and test on all of it.
The data, its groups and its fixed test split are :mod:`.default_data`'s.
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

RECIPE = 2
DATASET = "shared-data"
CLIP_FRAMES = 40


@dataclass(frozen=True)
class Candidate:
    """One model the recipe trains: backbone, crop size, frames per sequence (1: a frame model) and epochs."""

    backbone: str
    image_size: int
    length: int
    epochs: int
    batch_size: int = 16
    lr: float = 3e-4
    stage: str = "screen"  # screen (stage 1), final (the chosen frame model, trained longer) or sequence

    @property
    def key(self) -> str:
        frames = "frame" if self.length == FRAME_MODEL_LENGTH else f"{self.length}"
        return f"{self.backbone}_{self.image_size}_{frames}" + ("_final" if self.stage == "final" else "")

    def to_dict(self) -> dict[str, Any]:
        """What shapes the trained model (the stage is only its name), and the key."""
        return {**{k: v for k, v in asdict(self).items() if k != "stage"}, "key": self.key}


# Stage 1, backbone and crop size, screened as frame models with one small budget (one frame per clip and epoch:
# the cheapest fair comparison); the chosen one is then trained for FINAL_FRAME_EPOCHS.
BACKBONE_CANDIDATES = (
    Candidate("mobilenet_v2", 112, FRAME_MODEL_LENGTH, 6, batch_size=32),
    Candidate("mobilenet_v2", 160, FRAME_MODEL_LENGTH, 6, batch_size=32),
    Candidate("efficientnet_lite0", 160, FRAME_MODEL_LENGTH, 6, batch_size=32),
    Candidate("efficientnet_lite0", 224, FRAME_MODEL_LENGTH, 6, batch_size=32),
)
FINAL_FRAME_EPOCHS = 14
# FFHQ real photos whose faces (and their self-blended copies) also train every frame model, in every experiment
# (they are of no held-out source); sequence models cannot use one-frame clips. 0: none.
PHOTOS = 150
# Stage 2, the sequence models of the chosen backbone and size: the shipped lengths, epochs in inverse proportion
# to the frames an epoch costs.
# They start from the chosen frame model's trained backbone (its features already tell blending artefacts apart) and
# train on a few evenly spaced windows of each video, so an epoch costs about what a frame model's does per frame.
SEQUENCE_EPOCHS = {10: 3, 20: 2, 40: 2}
SEQUENCE_BATCH = {10: 8, 20: 4, 40: 2}
SEQUENCE_CLIPS_PER_VIDEO = {10: 4, 20: 3, 40: 2}


def final_frame_candidate(chosen: Candidate) -> Candidate:
    return replace(chosen, epochs=FINAL_FRAME_EPOCHS, stage="final")


def sequence_candidates(chosen: Candidate, lengths: list[int]) -> list[Candidate]:
    return [
        replace(
            chosen, length=length, epochs=SEQUENCE_EPOCHS[length], batch_size=SEQUENCE_BATCH[length], stage="sequence"
        )
        for length in lengths
    ]


# The choice's cost term. Across machines the same candidate's validation AUC has moved by up to 0.028 (the card's
# "Repeatability" and photo sections), so a difference between two candidates below about 0.04 is noise: a
# costlier candidate (later in the table) is chosen only if it beats every cheaper one by more than that.
CHOICE_MARGIN = 0.04
# What the recipe's training may cost on the 2-core CPU (its 3 hours less about 40 minutes of preprocessing and
# testing), and what the stages after the screening cost in screening runs of the chosen candidate (three
# leave-one-source-out runs, the final frame model and the three sequence models; about 8 in the card's builds).
TRAINING_BUDGET_SECONDS = 140 * 60
STAGES_AFTER_SCREENING = 8.0


def choose(validated: dict[str, float], screen_seconds: dict[str, float] | None = None) -> str:
    """The candidate the rest of the recipe trains, from the screening's validation AUCs (and train seconds).

    Table order is cost order. A candidate is eligible if it beats every cheaper one by more than
    ``CHOICE_MARGIN`` (the cheapest finished one always is), and affordable if the screening's time plus
    ``STAGES_AFTER_SCREENING`` of its own screening runs fit ``TRAINING_BUDGET_SECONDS``; the best eligible and
    affordable one is chosen, or the cheapest when none is affordable. A candidate without an AUC (one class) beats
    none and is beaten by any.
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
        spent = sum(screen_seconds.get(key, 0.0) for key in finished)
        affordable = [
            key for key in eligible if spent + STAGES_AFTER_SCREENING * screen_seconds[key] <= TRAINING_BUDGET_SECONDS
        ]
        eligible = affordable or eligible[:1]
    return max(eligible, key=lambda key: (auc(key), -order.index(key)))


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
