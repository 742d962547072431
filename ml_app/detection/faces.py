"""Face detection behind a small interface, with a face_recognition (dlib) backend.

Two calls, because tracking needs two kinds of search: ``detect`` scans a whole frame (on a copy scaled down to the
configured size, boxes mapped back to full resolution) to find every face; ``detect_near`` looks again only around a
face's last box, on a patch scaled so the face is about the detector's favourite size. The second costs a few
milliseconds where the first costs a hundred, so a window needs only a few full scans.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from .geometry import Box
from .preprocessing import DetectorSettings

# The face size (pixels) at which dlib's HOG and MMOD detectors work best: their windows are about 80 pixels.
_TARGET_FACE = 100.0
_ROI_MARGIN = 0.75  # the region searched by detect_near is the face's square grown by this much on every side
_ROI_MIN_IOU = 0.25
_ROI_HOG_THRESHOLD = -0.4  # a face is known to be near: accept weaker HOG responses there
_ENCODING_MARGIN = 0.5


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float


class FaceDetector(Protocol):
    """What the tracker (``detect``, ``detect_near``) and the linking of people across windows (``encode``) need."""

    settings: DetectorSettings

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in an RGB frame, largest first."""

    def detect_near(self, image: np.ndarray, box: Box) -> Detection | None:
        """The face closest to ``box`` in its neighbourhood, or None if it is no longer there."""

    def encode(self, image: np.ndarray, box: Box) -> np.ndarray:
        """A descriptor of the face in ``box`` (1-D float32; near descriptors: the same person), to link windows."""


_models_lock = threading.Lock()
_models: dict[str, object] = {}


def _face_recognition_api():
    """Import face_recognition once; its models package still imports the deprecated pkg_resources."""
    with _models_lock:
        if "api" not in _models:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
                from face_recognition import api
            _models["api"] = api
    return _models["api"]


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-6:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


class FaceRecognitionDetector:
    """face_recognition's HOG detector (default) or its CNN (MMOD) detector."""

    def __init__(self, settings: DetectorSettings):
        self.settings = settings
        api = _face_recognition_api()
        self._api = api
        self._hog = api.face_detector
        self._cnn = api.cnn_face_detector if settings.model == "cnn" else None

    def _run(self, image: np.ndarray, upsample: int, threshold: float) -> list[Detection]:
        image = np.ascontiguousarray(image)
        if self._cnn is not None:
            found = self._cnn(image, upsample)
            return [
                Detection(Box(r.rect.left(), r.rect.top(), r.rect.right(), r.rect.bottom()), float(r.confidence))
                for r in found
                if r.confidence >= threshold
            ]
        rects, scores, _ = self._hog.run(image, upsample, threshold)
        return [
            Detection(Box(r.left(), r.top(), r.right(), r.bottom()), float(score))
            for r, score in zip(rects, scores, strict=True)
        ]

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = image.shape[:2]
        longest = max(height, width)
        max_side = self.settings.max_side
        scale = 1.0 if max_side is None or longest <= max_side else max_side / longest
        found = self._run(_resize(image, scale), self.settings.upsample, 0.0)
        detections = [Detection(d.box.scaled(1.0 / scale), d.score) for d in found]
        detections = [d for d in detections if d.box.size >= self.settings.min_face_size]
        return sorted(detections, key=lambda d: d.box.area, reverse=True)

    def detect_near(self, image: np.ndarray, box: Box) -> Detection | None:
        height, width = image.shape[:2]
        region = box.square(margin=_ROI_MARGIN).clipped(width, height).rounded()
        x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        scale = min(4.0, max(0.05, _TARGET_FACE / max(box.size, 1.0)))
        patch = _resize(image[y0:y1, x0:x1], scale)
        threshold = _ROI_HOG_THRESHOLD if self._cnn is None else 0.0
        best: Detection | None = None
        best_iou = _ROI_MIN_IOU
        for found in self._run(patch, 0, threshold):
            candidate = found.box.scaled(1.0 / scale).shifted(x0, y0)
            overlap = candidate.iou(box)
            if overlap >= best_iou:
                best, best_iou = Detection(candidate, found.score), overlap
        return best

    def encode(self, image: np.ndarray, box: Box) -> np.ndarray:
        """A 128-number face descriptor (dlib's ResNet via face_recognition) to tell people apart across windows."""
        height, width = image.shape[:2]
        region = box.square(margin=_ENCODING_MARGIN).clipped(width, height).rounded()
        x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
        patch = np.ascontiguousarray(image[y0:y1, x0:x1])
        local = box.shifted(-x0, -y0).clipped(x1 - x0, y1 - y0)
        encodings = self._api.face_encodings(patch, [local.to_css()], num_jitters=1, model="small")
        return np.asarray(encodings[0], dtype=np.float32)


def build_detector(settings: DetectorSettings) -> FaceDetector:
    """The detector a checkpoint's settings ask for."""
    return FaceRecognitionDetector(settings)
