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

from typing import TYPE_CHECKING, Any

from .base import Detection, FaceDetector

if TYPE_CHECKING:
    from ..preprocessing import DetectorSettings
    from .centerface import CenterFaceDetector
    from .dlib_backend import FaceRecognitionDetector

__all__ = ["CenterFaceDetector", "Detection", "FaceDetector", "FaceRecognitionDetector", "build_detector"]


def __getattr__(name: str) -> Any:
    """The backends are imported when first asked for, not with the package: the descriptor process
    (``descriptor_process``) imports ``dlib_models`` from here and must not pay for PyTorch, which they import."""
    if name == "CenterFaceDetector":
        from .centerface import CenterFaceDetector

        return CenterFaceDetector
    if name == "FaceRecognitionDetector":
        from .dlib_backend import FaceRecognitionDetector

        return FaceRecognitionDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_detector(settings: DetectorSettings) -> FaceDetector:
    """The detector a checkpoint's settings ask for (models load once per process and are shared)."""
    if settings.backend == "centerface":
        from .centerface import CenterFaceDetector

        return CenterFaceDetector(settings)
    from .dlib_backend import FaceRecognitionDetector

    return FaceRecognitionDetector(settings)
