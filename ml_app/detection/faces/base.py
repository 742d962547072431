"""What every face detector gives and needs: the ``Detection`` it returns, the ``FaceDetector`` interface the tracker
and the linking of people use, and the small image arithmetic the backends share (scaling a copy, cutting the patch
that ``detect_near`` searches, picking the candidate that continues a face)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from ..geometry import Box

if TYPE_CHECKING:  # not at run time: the descriptor process imports this package without PyTorch
    from ..preprocessing import DetectorSettings

Landmarks = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Detection:
    """A face: its box in frame pixels, the detector's score, and (CenterFace) its 5 landmarks in frame pixels:
    the eyes (left, right as seen in the image), the nose tip, the mouth corners (left, right)."""

    box: Box
    score: float
    landmarks: Landmarks | None = None

    def mapped(self, scale: float, dx: float = 0.0, dy: float = 0.0) -> Detection:
        """From the pixels of a copy scaled by ``scale`` (and cut at ``dx, dy``) to the frame's."""
        points = None
        if self.landmarks is not None:
            points = tuple((x / scale + dx, y / scale + dy) for x, y in self.landmarks)
        return Detection(self.box.scaled(1.0 / scale).shifted(dx, dy), self.score, points)


class FaceDetector(Protocol):
    """What the tracker (``detect``, ``detect_near``) and the linking of people across windows (``encode``) need."""

    settings: DetectorSettings

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces in an RGB frame, largest first."""

    def detect_near(self, image: np.ndarray, box: Box) -> Detection | None:
        """The face closest to ``box`` in its neighbourhood, or None if it is no longer there."""

    def encode(self, image: np.ndarray, box: Box) -> np.ndarray:
        """A descriptor of the face in ``box`` (1-D float32; near descriptors: the same person), to link windows."""


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` scaled by ``scale`` (area averaging down, bilinear up); the image itself at scale 1."""
    if abs(scale - 1.0) < 1e-6:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def scan_scale(image: np.ndarray, max_side: int | None) -> float:
    """The factor that brings a frame's longer side down to ``max_side`` (never up)."""
    longest = max(image.shape[:2])
    return 1.0 if max_side is None or longest <= max_side else max_side / longest


def largest_first(detections: list[Detection], min_face_size: int) -> list[Detection]:
    kept = [d for d in detections if d.box.size >= min_face_size]
    return sorted(kept, key=lambda d: d.box.area, reverse=True)


def near_region(image: np.ndarray, box: Box, margin: float) -> tuple[int, int, int, int] | None:
    """The pixel region ``detect_near`` searches: ``box``'s square grown by ``margin``, clipped to the frame."""
    height, width = image.shape[:2]
    region = box.square(margin=margin).clipped(width, height).rounded()
    x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def closest(candidates: list[Detection], box: Box, min_iou: float) -> Detection | None:
    """The candidate overlapping ``box`` most, if it overlaps at least ``min_iou``."""
    best: Detection | None = None
    best_iou = min_iou
    for candidate in candidates:
        overlap = candidate.box.iou(box)
        if overlap >= best_iou:
            best, best_iou = candidate, overlap
    return best
