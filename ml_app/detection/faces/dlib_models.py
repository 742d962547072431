"""dlib's models, each loaded on first use straight from the ``face_recognition_models`` package's files.

``import face_recognition`` would load every model it has at import (the CNN detector, the 68- and 5-point landmark
predictors, the ResNet encoder: about 130 MB read, seconds) and import the deprecated ``pkg_resources``; a CenterFace
analysis needs only the encoder and the 5-point predictor, a HOG one the HOG detector too. The calls are
face_recognition's own (``face_encodings(..., model="small")``), so descriptors are the same to the last bit.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..geometry import Box
from .model_cache import cached_file

_FILES = {
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
    "encoder": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}
_ENCODING_MARGIN = 0.5

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, Any] = {}


def _dlib():
    try:
        import dlib
    except ImportError as exc:
        raise ConfigurationError(
            "Face detection needs dlib: pip install dlib-bin==20.0.1.post1 (or run ./setup.sh)."
        ) from exc
    return dlib


def model_file(name: str) -> Path:
    """The path of one of face_recognition_models' files, found without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "dlib's face models are missing: pip install face_recognition_models==0.3.0 (or run ./setup.sh)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / _FILES[name]
    if not path.is_file():
        raise ConfigurationError(
            f"dlib's model file {path} is missing: pip install --force-reinstall face_recognition_models==0.3.0."
        )
    return path


def model(name: str) -> Any:
    """A dlib model by name (``hog_detector``, ``cnn_detector``, ``shape_predictor_5``, ``encoder``), loaded once."""
    with _lock:
        if name not in _loaded:
            dlib = _dlib()
            if name == "hog_detector":
                _loaded[name] = _hog_detector(dlib)
            elif name == "cnn_detector":
                _loaded[name] = dlib.cnn_face_detection_model_v1(str(model_file(name)))
            elif name == "shape_predictor_5":
                _loaded[name] = dlib.shape_predictor(str(model_file(name)))
            elif name == "encoder":
                _loaded[name] = dlib.face_recognition_model_v1(str(model_file(name)))
            else:
                raise KeyError(name)
        return _loaded[name]


def _hog_detector(dlib) -> Any:
    """dlib's frontal face (HOG) detector. ``get_frontal_face_detector`` rebuilds it from a string inside dlib, which
    takes seconds here; the same detector saved once to the cache (``model_cache``) loads in milliseconds."""
    stem = f"frontal_face_detector-dlib{getattr(dlib, '__version__', 'unknown')}"
    built: list[Any] = []

    def write(path: Path) -> None:
        built.append(dlib.get_frontal_face_detector())
        built[0].save(str(path))

    cached = cached_file(stem, ".svm", write)
    if built:
        return built[0]
    if cached is not None:
        try:
            return dlib.fhog_object_detector(str(cached))
        except RuntimeError as exc:
            log.debug("Ignoring the cached HOG detector %s: %s", cached, exc)
    return dlib.get_frontal_face_detector()


def face_descriptor(image: np.ndarray, box: Box) -> np.ndarray:
    """The 128-number descriptor of dlib's ResNet (face_recognition's ``face_encodings``, 5-point landmarks, one
    jitter) of the face in ``box``, computed on the face's neighbourhood only."""
    height, width = image.shape[:2]
    region = box.square(margin=_ENCODING_MARGIN).clipped(width, height).rounded()
    x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    top, right, bottom, left = box.shifted(-x0, -y0).clipped(x1 - x0, y1 - y0).to_css()
    predictor, encoder = model("shape_predictor_5"), model("encoder")
    landmarks = predictor(patch, _dlib().rectangle(left, top, right, bottom))
    return np.asarray(np.array(encoder.compute_face_descriptor(patch, landmarks, 1)), dtype=np.float32)
