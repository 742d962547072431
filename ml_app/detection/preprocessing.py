"""Every setting that shapes what the network sees, and the one code path that applies them.

Training (model_creation), the worker, the command line and the tests all crop and normalise through this module, and
the settings travel inside each checkpoint, so a model is always fed the way it was trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import cv2
import numpy as np
import torch
from PIL import Image

from .errors import ConfigurationError
from .geometry import Box

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def settings_from_dict(cls, data: dict[str, Any] | None, what: str):
    """Build a settings dataclass from a checkpoint's dict, refusing keys this version does not know."""
    data = dict(data or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"Unknown {what} setting(s): {', '.join(unknown)}.")
    for f in fields(cls):
        if f.name in data and isinstance(data[f.name], list):
            data[f.name] = tuple(data[f.name])
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"Invalid {what} settings: {exc}") from exc


# The face detectors to choose from (flags and validation take them from here) and each one's models.
DETECTOR_MODELS: dict[str, tuple[str, ...]] = {"centerface": ("centerface",), "face_recognition": ("hog", "cnn")}
DETECTOR_BACKENDS = tuple(DETECTOR_MODELS)
DETECTOR_MODEL_CHOICES = tuple(model for models in DETECTOR_MODELS.values() for model in models)
UNSET = -1  # a DetectorSettings size or count left to the backend's default (see _BACKEND_DEFAULTS); NaN for a score

# What each backend means by a setting left unset, in code or in a stored dict. face_recognition's are the values
# every checkpoint before CenterFace was made with: they must never change. CenterFace's come from bench/README.md.
_BACKEND_DEFAULTS: dict[str, dict[str, Any]] = {
    "face_recognition": {
        "model": "hog",
        "max_side": 640,
        "full_detect_every": 10,
        "min_face_size": 24,
        "score_threshold": 0.0,
    },
    # Measured (bench/README.md, "Face detectors"): at 640 px CenterFace finds half as many again of the 32-48 px
    # faces as at 480 px, for 5% more tracking time; K=20 loses faces that move fast; no real face was under 32 px.
    "centerface": {
        "model": "centerface",
        "max_side": 640,
        "full_detect_every": 10,
        "min_face_size": 24,
        "score_threshold": 0.5,
    },
}


@dataclass(frozen=True)
class DetectorSettings:
    """How faces are found and followed through a window.

    ``backend`` is the detector: ``centerface`` (the default) or ``face_recognition`` (dlib; ``model`` ``hog`` or
    ``cnn``). Left unset, the backend follows the model (``hog``/``cnn``: face_recognition) and ``model``,
    ``max_side``, ``full_detect_every``, ``min_face_size`` and ``score_threshold`` take that backend's defaults, so
    ``DetectorSettings(model="hog")`` is today's HOG whatever CenterFace's defaults become. Full-frame detection runs
    on a copy scaled so its longer side is at most ``max_side`` (None: full resolution), every ``full_detect_every``
    frames; in between, each face is re-detected in a small region around its last box (cheap, and exact per frame).
    Gaps of up to ``max_gap`` frames are filled from neighbouring frames. ``score_threshold`` is the detector's own
    score (HOG's SVM margin, the CNN's confidence, CenterFace's heatmap probability); ``upsample`` is dlib's only.
    """

    backend: str = ""  # "" (unset): face_recognition if ``model`` is one of its models, else centerface
    model: str = ""
    max_side: int | None = UNSET
    upsample: int = 1
    full_detect_every: int = UNSET
    max_gap: int = 4
    max_faces: int = 4
    min_face_size: int = UNSET  # pixels in the original frame; smaller detections are ignored
    scan_last_frame: bool = False  # also scan the window's last frame in full (legacy models score that frame)
    min_detected_fraction: float = 0.5  # a face is scored in a window only if detected (not filled) this often
    score_threshold: float = math.nan

    def __post_init__(self) -> None:
        backend = self.backend or (
            "face_recognition" if self.model in DETECTOR_MODELS["face_recognition"] else "centerface"
        )
        if backend not in DETECTOR_MODELS:
            raise ValueError(f"unknown detector backend {backend!r} ({' or '.join(DETECTOR_BACKENDS)})")
        object.__setattr__(self, "backend", backend)
        for name, default in _BACKEND_DEFAULTS[backend].items():
            value = getattr(self, name)
            if value is not None and (value in (UNSET, "") or (isinstance(value, float) and math.isnan(value))):
                object.__setattr__(self, name, default)
        if self.model not in DETECTOR_MODELS[backend]:
            raise ValueError(f"unknown {backend} model {self.model!r} ({' or '.join(DETECTOR_MODELS[backend])})")
        if self.max_side is not None and self.max_side < 64:
            raise ValueError("max_side must be at least 64 pixels or None")
        if self.upsample < 0 or self.full_detect_every < 1 or self.max_gap < 0 or self.max_faces < 1:
            raise ValueError("upsample, max_gap must be >= 0; full_detect_every, max_faces >= 1")
        if self.min_face_size < 0:
            raise ValueError("min_face_size must be >= 0")
        if not 0.0 <= self.min_detected_fraction <= 1.0:
            raise ValueError("min_detected_fraction must be between 0 and 1")
        if backend == "centerface" and not 0.0 < self.score_threshold < 1.0:
            raise ValueError("CenterFace's score_threshold must be between 0 and 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DetectorSettings:
        """Stored settings. A dict without ``backend`` predates the choice of detector: it means face_recognition,
        and every key it lacks takes face_recognition's default (an old checkpoint keeps analysing as it was made)."""
        data = dict(data or {})
        if "backend" not in data and data.get("model", "hog") in DETECTOR_MODELS["face_recognition"]:
            data["backend"] = "face_recognition"
        return settings_from_dict(cls, data, "detector")


def detector_flag_help() -> dict[str, str]:
    """The help of the detector flags, with each backend's defaults (one text for every command that has them)."""
    settings = [DetectorSettings(backend=backend) for backend in DETECTOR_BACKENDS]

    def defaults(name: str) -> str:
        return ", ".join(f"{getattr(s, name) or 0} for {s.backend}" for s in settings)

    models = "; ".join(f"{s.backend}: {' or '.join(DETECTOR_MODELS[s.backend])}" for s in settings)
    return {
        "detector_backend": f"face detector (default {DetectorSettings().backend}; the shipped models use "
        "face_recognition's hog)",
        "detector_model": f"the backend's model ({models}; default the first)",
        "detector_max_side": f"full-frame scan size, 0 = full resolution (default {defaults('max_side')})",
        "full_detect_every": f"frames between full-frame scans (default {defaults('full_detect_every')})",
    }


@dataclass(frozen=True)
class Preprocessing:
    """Frame sampling, face detection, crop, resize, colour order, normalisation and class order of a model."""

    frame_step: int = 1  # frames of a window are consecutive
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    crop: Literal["square", "box"] = "square"  # square around the face centre, or the detector's box as it is
    margin: float = 0.25  # fraction of the face size added on every side of the crop
    image_size: int = 112
    resize: Literal["area", "pil_bilinear"] = "area"
    colour_order: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_order: tuple[str, str] = ("REAL", "FAKE")

    def __post_init__(self) -> None:
        if self.frame_step != 1:
            raise ValueError("only consecutive frames (frame_step 1) are supported")
        if self.crop not in ("square", "box"):
            raise ValueError(f"unknown crop {self.crop!r}")
        if self.resize not in ("area", "pil_bilinear"):
            raise ValueError(f"unknown resize {self.resize!r}")
        if self.colour_order not in ("RGB", "BGR"):
            raise ValueError(f"unknown colour order {self.colour_order!r}")
        if not 16 <= self.image_size <= 512:
            raise ValueError("image_size must be between 16 and 512")
        if self.margin < 0:
            raise ValueError("margin must be >= 0")
        if sorted(self.class_order) != ["FAKE", "REAL"]:
            raise ValueError("class_order must name REAL and FAKE once each")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values, std positive")

    @property
    def fake_index(self) -> int:
        return self.class_order.index("FAKE")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("mean", "std", "class_order"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Preprocessing:
        data = dict(data or {})
        detector = DetectorSettings.from_dict(data.pop("detector", None))
        return settings_from_dict(cls, {**data, "detector": detector}, "preprocessing")


def crop_region(box: Box, prep: Preprocessing) -> Box:
    """The region of the frame that becomes the network's input for a face ``box``."""
    if prep.crop == "box":
        return box.expanded(prep.margin)
    return box.square(margin=prep.margin)


def crop_face(image: np.ndarray, box: Box, prep: Preprocessing) -> np.ndarray:
    """Cut the face out of an RGB frame and resize it: ``(image_size, image_size, 3)`` uint8 in the model's order.

    Parts of a square crop that fall outside the frame are black, so a face at the border keeps its scale and centre.
    """
    height, width = image.shape[:2]
    region = crop_region(box, prep)
    if prep.crop == "box":  # the original app's tight crop: clipped to the frame, never padded
        region = region.clipped(width, height)
    region = region.rounded()
    x0, y0, x1, y1 = int(region.x0), int(region.y0), int(region.x1), int(region.y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop region {region}")
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"crop region {region} lies outside the {width}x{height} frame")
    patch = image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        padded = np.zeros((y1 - y0, x1 - x0, 3), dtype=image.dtype)
        padded[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = patch
        patch = padded
    size = prep.image_size
    if prep.resize == "pil_bilinear":
        patch = patch[:, :, ::-1] if prep.colour_order == "BGR" else patch
        # Exactly what torchvision's Resize((size, size)) does to a PIL image: the original app's transform.
        return np.array(Image.fromarray(np.ascontiguousarray(patch)).resize((size, size), Image.Resampling.BILINEAR))
    # cv2 reads the patch where it lies in the frame (no copy) and resizes each channel on its own, so the channels
    # are put in the model's order afterwards, on the small crop: the same pixels as reordering first.
    interpolation = cv2.INTER_AREA if patch.shape[0] >= size else cv2.INTER_LINEAR
    resized = cv2.resize(patch, (size, size), interpolation=interpolation)
    return np.ascontiguousarray(resized[:, :, ::-1]) if prep.colour_order == "BGR" else resized


def crops_to_tensor(crops: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """``(..., H, W, 3)`` uint8 crops to normalised float ``(..., 3, H, W)``, as ToTensor + Normalize would."""
    tensor = torch.from_numpy(np.require(crops, requirements=["C", "W"])).to(torch.float32).div_(255.0)
    tensor = tensor.movedim(-1, -3)
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(3, 1, 1)
    return tensor.sub_(mean).div_(std)  # in place: the same values and strides as (tensor - mean) / std
