"""Clips from a manifest as tensors, normalised by the same ``crops_to_tensor`` the app uses.

A stored clip may be longer than the model's sequence length: training takes a random run of consecutive frames,
evaluation the middle one. A frame model (sequence length 1) trains on one random frame of each clip per epoch (or
several, one from each stretch of it: :func:`frames_of_each_clip`) and is scored on the middle run of a window's
frames (its network averages their probabilities, as when it analyses a video; see :func:`scoring_length`). Crops
are normalised with the *model's* preprocessing, which may normalise differently from the manifest (a backbone's
own mean/std): stored crops are uint8, so only the crop settings must agree. An item marked ``synthetic="sbi"`` is
turned into a self-blended fake when loaded, and a face from a photo (``photo``) is then degraded like a face from a
video (:mod:`.degrade`). Crops come from the folder's decoded cache when it has one (:mod:`.crop_cache`).
Randomness comes from a generator seeded with (seed, epoch, index), so an epoch is the same whichever worker
process loads which item, and a resumed run repeats exactly what an uninterrupted one would do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from ml_app.detection.defaults import window_frames
from ml_app.detection.preprocessing import Preprocessing, crops_to_tensor

from . import degrade, sbi
from .augment import AugmentSettings, apply_params, sample_params
from .crop_cache import clip_length, read_frames
from .degrade import DegradeSettings
from .manifest import ClipRecord, Manifest, VideoRecord


@dataclass(frozen=True)
class ClipItem:
    video: VideoRecord
    clip: ClipRecord
    synthetic: str = ""  # "sbi": a self-blended fake made from this real clip when it is loaded
    photo: bool = False  # a face from a photo (an --extra-train manifest of images): degraded like a video face
    part: int = 0  # with ``parts`` > 1: the item draws its frames from this stretch of the clip (0 .. parts - 1)
    parts: int = 1


def frames_of_each_clip(items: list[ClipItem], count: int) -> list[ClipItem]:
    """``items`` with each video clip (not a photo, not a self-blended twin) ``count`` times, each copy drawing its
    frames from its own stretch of the clip, so a frame model sees ``count`` different frames of every video an
    epoch instead of one; the self-blended twins and photos stay as they are, the smaller part of what it learns."""
    if count == 1:
        return items
    out = []
    for item in items:
        if item.photo or item.synthetic:
            out.append(item)
        else:
            out.extend(replace(item, part=part, parts=count) for part in range(count))
    return out


SELF_BLENDED = "self-blended"


def with_self_blended(items: list[ClipItem]) -> list[ClipItem]:
    """``items`` plus, for every real clip, a self-blended fake of it (label FAKE, method "self-blended").

    The fake belongs to a video of its own (``<id>#sbi``) in the same group and split as its source, so splits keep
    groups whole and video-level metrics score it like any other fake video.
    """
    fakes = []
    for item in items:
        if item.video.label != "REAL" or item.synthetic:
            continue
        video = replace(item.video, video_id=f"{item.video.video_id}#sbi", label="FAKE", method=SELF_BLENDED, clips=[])
        fakes.append(ClipItem(video, item.clip, synthetic="sbi", photo=item.photo))
    return [*items, *fakes]


def scoring_length(is_frame_model: bool, sequence_length: int, manifest: Manifest) -> int:
    """Frames per clip when a model is validated or evaluated: its sequence length, or for a frame model a run of
    the frames of the window the app scores it by (``FRAME_MODEL_WINDOW``, their mean probability), or the whole
    clip when it is shorter."""
    return min(manifest.sequence_length, window_frames(sequence_length)) if is_frame_model else sequence_length


class ClipDataset(Dataset):
    """``(clip tensor (T, 3, S, S), class index, item index)`` per clip.

    ``preprocessing`` is the model's (default: the manifest's); its normalisation is applied to the stored crops.
    ``random_start`` takes a random run of frames every epoch (default: when augmenting, i.e. in training).
    """

    def __init__(
        self,
        manifest: Manifest,
        items: list[ClipItem],
        sequence_length: int,
        augment: AugmentSettings | None = None,
        seed: int = 0,
        preprocessing: Preprocessing | None = None,
        random_start: bool | None = None,
        degrade: DegradeSettings | None = None,
    ):
        self.manifest = manifest
        self.items = items
        self.sequence_length = sequence_length
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.preprocessing: Preprocessing = preprocessing or manifest.preprocessing
        self.random_start = augment is not None if random_start is None else random_start
        self.sbi_settings = sbi.SbiSettings()
        self.degrade = degrade  # how photo faces are made to look like video faces (None: they are not)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def target(self, index: int) -> int:
        """The class index of an item, in the checkpoint's class order."""
        return self.preprocessing.class_order.index(self.items[index].video.label)

    def targets(self) -> list[int]:
        return [self.target(i) for i in range(len(self.items))]

    def crops(self, index: int) -> np.ndarray:
        """The uint8 crops the network will see for item ``index`` (after choosing frames and augmenting)."""
        item = self.items[index]
        path = self.manifest.clip_path(item.clip)
        held, length = clip_length(path), self.sequence_length
        if held < length:
            raise ValueError(f"{item.clip.file} holds {held} frames, fewer than {length}")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        spare = held - length
        if not self.random_start:
            start = spare // 2
        else:  # within the item's stretch of the clip (the whole clip for an item of one part)
            low, high = (spare + 1) * item.part // item.parts, (spare + 1) * (item.part + 1) // item.parts
            start = int(rng.integers(low, max(high, low + 1)))
        crops = read_frames(path, start, length)
        if item.synthetic == "sbi":  # blended before augmentation, as a real fake would have been
            crops = sbi.self_blend(crops, self.preprocessing, sbi.sample_params(self.sbi_settings, rng))
        if item.photo and self.degrade is not None:  # after blending, as a fake's video was compressed after it
            crops = self._degraded(crops, index)
        if self.augment is not None:
            crops = apply_params(crops, sample_params(self.augment, rng), self.preprocessing.colour_order)
        return crops

    def _degraded(self, crops: np.ndarray, index: int) -> np.ndarray:
        """A photo face made to look like a video face, drawn from a generator of its own, so a real photo and its
        self-blended twin are degraded by one distribution whatever the label."""
        assert self.degrade is not None
        rng = np.random.default_rng([self.seed, self.epoch, index, 1])
        params = degrade.sample_params(self.degrade, crops.shape[1], rng)
        bgr = self.preprocessing.colour_order == "BGR"
        out = degrade.degrade(crops[..., ::-1] if bgr else crops, params)
        return np.ascontiguousarray(out[..., ::-1]) if bgr else out

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return crops_to_tensor(self.crops(index), self.preprocessing), self.target(index), index
