"""Face crops from photos, for frame models (sequence length 1): one record per photo, one single-frame clip per face.

A photo is decoded by ``images.read_image`` (the app's one safe reader: allow-listed formats, the pixel limit checked
before decoding, EXIF orientation applied), so the detector and the network see it upright and a decompression bomb
is refused with the same message as on the site. Faces are found and cropped by ``photo.find_photo_faces``, the
function ``analyze_image`` uses (the preprocessing's detector, largest first, at most ``max_faces``, ``crop_face``).
Photos that are already face crops (``aligned``: FFHQ, StyleGAN faces) are not searched: the whole photo is resized
by the same ``crop_face`` rule, so the pixels match what a crop of that size would give.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml_app.detection.errors import ImageError
from ml_app.detection.faces import FaceDetector, build_detector
from ml_app.detection.geometry import Box
from ml_app.detection.images import DEFAULT_MAX_PIXELS, read_image
from ml_app.detection.photo import find_photo_faces
from ml_app.detection.preprocessing import Preprocessing, crop_face

from .extract import CLIPS_DIR, extract_guarded, save_clip
from .layouts import VideoEntry
from .manifest import ClipRecord, VideoRecord


@dataclass(frozen=True)
class ImageSettings:
    """Everything that decides which crops a photo yields, and the decoding limit."""

    preprocessing: Preprocessing
    aligned: bool = False  # the photos are face crops already: resize the whole photo, detect nothing
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError("--max-pixels must be at least 1")

    @property
    def media(self) -> str:
        return "images"

    @property
    def sequence_length(self) -> int:
        return 1

    @property
    def max_windows(self) -> int:
        return 1

    def to_dict(self) -> dict[str, Any]:
        """What a resumed run must match. ``max_pixels`` is left out: it changes which photos are refused, not what
        a photo's crops are, so a run may be resumed with a higher limit (and --retry-failed) to take the big ones."""
        return {"media": self.media, "preprocessing": self.preprocessing.to_dict(), "aligned": self.aligned}

    def extractor(self) -> ImageExtractor:
        return ImageExtractor(self)


def whole_image_crop(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """An aligned face photo as the network's input: the whole photo through ``crop_face`` (no margin, no padding),
    so size, interpolation and colour order follow the preprocessing exactly as for a detected face."""
    height, width = image.shape[:2]
    return crop_face(image, Box(0, 0, width, height), replace(prep, crop="box", margin=0.0))


class ImageExtractor:
    """Turns photos into single-frame clip files; holds one face detector (none when aligned), so one per process."""

    def __init__(self, settings: ImageSettings):
        self.settings = settings
        self.detector: FaceDetector | None = (
            None if settings.aligned else build_detector(settings.preprocessing.detector)
        )

    def extract(self, entry: VideoEntry, out_root: Path) -> VideoRecord:
        """Write a clip per face of ``entry`` under ``out_root/clips/<id>/``; never raises for a bad photo."""
        return extract_guarded(entry, lambda record: self._extract(entry, out_root, record), ImageError)

    def _faces(self, image: np.ndarray) -> list[tuple[np.ndarray, Box]]:
        """(crop, box) per face, largest first; the whole photo when aligned."""
        prep = self.settings.preprocessing
        if self.detector is None:
            height, width = image.shape[:2]
            return [(whole_image_crop(image, prep), Box(0, 0, width, height))]
        return [(face.crop, face.detection.box) for face in find_photo_faces(image, self.detector, prep)]

    def _extract(self, entry: VideoEntry, out_root: Path, record: VideoRecord) -> None:
        image, info = read_image(entry.path, self.settings.max_pixels)
        record.frame_count, record.windows = 1, 1
        record.width, record.height = info.width, info.height
        faces = self._faces(image)
        record.faces_found = len(faces)
        if not faces:
            record.status, record.reason = "no_face", f"no face found in the {info.width} x {info.height} photo"
            return
        folder = out_root / CLIPS_DIR / entry.video_id
        folder.mkdir(parents=True, exist_ok=True)
        for index, (crop, box) in enumerate(faces):
            name = f"w000_t{index}.npz"
            boxes = np.array([box.rounded().to_list()], dtype=np.int32)
            save_clip(folder / name, crop[np.newaxis], np.zeros(1, np.int64), boxes)
            record.clips.append(
                ClipRecord(
                    file=f"{CLIPS_DIR}/{entry.video_id}/{name}",
                    window=0,
                    start_frame=0,
                    track=index,
                    person=index,
                    frames=1,
                    filled=0,
                )
            )
        record.windows_with_face = 1
        record.frames_kept = record.people = len(record.clips)
