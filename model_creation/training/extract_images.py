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

import cv2
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
    # a photo in which no face is found is searched again with this share of its longer side added on every side
    # (black, as crop_face fills what lies outside a frame), for tight face crops that leave the detector no
    # context around the face (0: no second search)
    pad_if_no_face: float = 0.0

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError("--max-pixels must be at least 1")
        if not 0.0 <= self.pad_if_no_face <= 1.0:
            raise ValueError("--pad-if-no-face is a share of the photo's longer side, between 0 and 1")

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
        data = {"media": self.media, "preprocessing": self.preprocessing.to_dict(), "aligned": self.aligned}
        if self.pad_if_no_face:  # only when set: folders made before it still resume
            data["pad_if_no_face"] = self.pad_if_no_face
        return data

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

    def _faces(self, image: np.ndarray) -> tuple[list[tuple[np.ndarray, Box]], int]:
        """(crop, box) per face, largest first (the whole photo when aligned), and the border in pixels the photo
        needed before a face was found (0: none)."""
        prep = self.settings.preprocessing
        if self.detector is None:
            height, width = image.shape[:2]
            return [(whole_image_crop(image, prep), Box(0, 0, width, height))], 0
        faces = find_photo_faces(image, self.detector, prep)
        border = round(self.settings.pad_if_no_face * max(image.shape[:2]))
        if faces or not border:
            return [(face.crop, face.detection.box) for face in faces], 0
        padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT)
        found = find_photo_faces(padded, self.detector, prep)
        return [(face.crop, face.detection.box.shifted(-border, -border)) for face in found], border

    def _extract(self, entry: VideoEntry, out_root: Path, record: VideoRecord) -> None:
        image, info = read_image(entry.path, self.settings.max_pixels)
        record.frame_count, record.windows = 1, 1
        record.width, record.height = info.width, info.height
        faces, border = self._faces(image)
        record.faces_found = len(faces)
        if not faces:
            record.status, record.reason = "no_face", f"no face found in the {info.width} x {info.height} photo"
            if self.settings.pad_if_no_face:
                record.reason += f", nor with a black border of {self.settings.pad_if_no_face:.0%} around it"
            return
        if border:  # an ok record's reason says how its face was found
            record.reason = f"face found once the photo had a black border of {border} px"
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
