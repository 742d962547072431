"""Face detection behind a small interface, with two backends: CenterFace (the default for new checkpoints) and
face_recognition's dlib detectors (HOG, which the shipped models were trained with, and its CNN).

Two calls, because tracking needs two kinds of search: ``detect`` scans a whole frame (on a copy scaled down to the
configured size, boxes mapped back to full resolution) to find every face; ``detect_near`` looks again only around a
face's last box, on a patch scaled so the face is about the detector's favourite size. The second costs a few
milliseconds where the first costs tens, so a window needs only a few full scans. ``encode`` gives dlib's face
descriptor whichever backend found the face. A checkpoint records its detector settings, and ``build_detector``
turns them into the detector, for preprocessing and analysis alike.
"""

from __future__ import annotations

from ..preprocessing import DetectorSettings
from .base import Detection, FaceDetector
from .centerface import CenterFaceDetector
from .dlib_backend import FaceRecognitionDetector

__all__ = ["CenterFaceDetector", "Detection", "FaceDetector", "FaceRecognitionDetector", "build_detector"]


def build_detector(settings: DetectorSettings) -> FaceDetector:
    """The detector a checkpoint's settings ask for (models load once per process and are shared)."""
    if settings.backend == "centerface":
        return CenterFaceDetector(settings)
    return FaceRecognitionDetector(settings)
