"""face_recognition's detectors, through dlib directly: HOG (the shipped models') and the CNN (MMOD).

``detect`` scans a copy of the frame scaled down to ``max_side``; ``detect_near`` looks again only around a face's
last box, on a patch scaled so the face is about the detectors' favourite size, and accepts weaker HOG responses
there because a face is known to be near.
"""

from __future__ import annotations

import numpy as np

from ..geometry import Box
from ..preprocessing import DetectorSettings
from . import dlib_models
from .base import Detection, closest, largest_first, near_region, resize, scan_scale

# The face size (pixels) at which dlib's HOG and MMOD detectors work best: their windows are about 80 pixels.
_TARGET_FACE = 100.0
_ROI_MARGIN = 0.75  # the region searched by detect_near is the face's square grown by this much on every side
_ROI_MIN_IOU = 0.25
_ROI_HOG_THRESHOLD = -0.4  # a face is known to be near: accept weaker HOG responses there


class FaceRecognitionDetector:
    """face_recognition's HOG detector (``model="hog"``) or its CNN (MMOD) detector (``model="cnn"``)."""

    encodes_with_dlib = True  # ``encode`` is ``dlib_models.face_descriptor``: the descriptor process runs it

    def __init__(self, settings: DetectorSettings):
        if settings.backend != "face_recognition":
            raise ValueError(f"FaceRecognitionDetector needs face_recognition settings, not {settings.backend!r}")
        self.settings = settings
        if settings.model == "cnn":
            self._cnn = dlib_models.model("cnn_detector")
        else:
            self._cnn = None
            self._hog = dlib_models.model("hog_detector")

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
        scale = scan_scale(image, self.settings.max_side)
        found = self._run(resize(image, scale), self.settings.upsample, self.settings.score_threshold)
        return largest_first([d.mapped(scale) for d in found], self.settings.min_face_size)

    def detect_near(self, image: np.ndarray, box: Box) -> Detection | None:
        region = near_region(image, box, _ROI_MARGIN)
        if region is None:
            return None
        x0, y0, x1, y1 = region
        scale = min(4.0, max(0.05, _TARGET_FACE / max(box.size, 1.0)))
        patch = resize(image[y0:y1, x0:x1], scale)
        threshold = _ROI_HOG_THRESHOLD if self._cnn is None else 0.0
        return closest([d.mapped(scale, x0, y0) for d in self._run(patch, 0, threshold)], box, _ROI_MIN_IOU)

    def encode(self, image: np.ndarray, box: Box) -> np.ndarray:
        """A 128-number face descriptor (dlib's ResNet, as face_recognition computes it) to tell people apart."""
        return dlib_models.face_descriptor(image, box)
