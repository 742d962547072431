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
PHOTOS = 0
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


def choose(validated: dict[str, float]) -> str:
    """The candidate with the best validation AUC; a tie goes to the earlier (cheaper) entry of the table."""
    order = [candidate.key for candidate in BACKBONE_CANDIDATES]

    def rank(key: str) -> tuple[float, int]:
        auc = validated[key]
        return (-auc if math.isfinite(auc) else math.inf, order.index(key))  # no AUC (one class): last

    ranked = sorted((key for key in validated if key in order), key=rank)
    if not ranked:
        raise ValueError("No backbone candidate has finished; nothing to choose from.")
    return ranked[0]


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
