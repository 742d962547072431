"""Augmentation drawn once per sequence and applied identically to every frame of it.

A deepfake shows itself partly through what changes (or does not) from frame to frame, so a flip, a colour change,
a blur or a JPEG re-compression that differed between frames would add flicker no real video has. The crops stay the
exact size and framing ``crop_face`` gives at inference: nothing here moves or rescales the face.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .reencode import Reencoding, apply_reencoding, sample_reencoding


@dataclass(frozen=True)
class AugmentSettings:
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.2  # factor drawn from [1 - x, 1 + x]
    contrast: float = 0.2
    saturation: float = 0.2
    blur: float = 0.2  # probability of a Gaussian blur ...
    blur_sigma: tuple[float, float] = (0.3, 1.2)  # ... with a sigma from this range
    jpeg: float = 0.3  # probability of a JPEG re-compression ...
    jpeg_quality: tuple[int, int] = (40, 95)  # ... at a quality from this range
    # Re-encoding (off unless asked, e.g. by ``train_model --reencode``): the probability of a codec round trip
    # (H.264, VP9 or MJPEG at a random quality, see .reencode), and of a downscale by a factor from the range first.
    codec: float = 0.0
    downscale: float = 0.0
    downscale_range: tuple[float, float] = (0.35, 0.8)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def for_training(cls, augment: bool, reencode: bool) -> AugmentSettings | None:
        """The settings a training run's flags ask for (``None``: no augmentation)."""
        if not augment:
            return None
        return cls(codec=0.5, downscale=0.3) if reencode else cls()


@dataclass(frozen=True)
class SequenceParams:
    """The random choices for one sequence."""

    flip: bool
    brightness: float
    contrast: float
    saturation: float
    blur_sigma: float | None
    jpeg_quality: int | None
    reencoding: Reencoding | None = None


def sample_params(settings: AugmentSettings, rng: np.random.Generator) -> SequenceParams:
    def factor(amount: float) -> float:
        return float(rng.uniform(1 - amount, 1 + amount)) if amount else 1.0

    flip = bool(rng.random() < settings.flip)
    brightness, contrast, saturation = (
        factor(settings.brightness),
        factor(settings.contrast),
        factor(settings.saturation),
    )
    blur = float(rng.uniform(*settings.blur_sigma)) if rng.random() < settings.blur else None
    jpeg = (
        int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
        if rng.random() < settings.jpeg
        else None
    )
    reencoding = None
    if settings.codec or settings.downscale:  # drawn only when asked: runs without it draw what they always drew
        reencoding = sample_reencoding(rng, settings.codec, settings.downscale, settings.downscale_range)
    return SequenceParams(flip, brightness, contrast, saturation, blur, jpeg, reencoding)


_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB luma weights


def apply_params(frames: np.ndarray, params: SequenceParams, colour_order: str = "RGB") -> np.ndarray:
    """``(T, H, W, 3)`` uint8 crops in ``colour_order`` -> augmented crops, same shape, dtype and order."""
    rgb = frames[..., ::-1] if colour_order == "BGR" else frames
    out = rgb[:, :, ::-1] if params.flip else rgb
    out = out.astype(np.float32)
    if params.brightness != 1.0:
        out *= params.brightness
    grey = out @ _GREY  # (T, H, W)
    if params.contrast != 1.0:
        mean = grey.mean(axis=(1, 2), keepdims=True)[..., None]
        out = (out - mean) * params.contrast + mean
        grey = out @ _GREY
    if params.saturation != 1.0:
        out = (out - grey[..., None]) * params.saturation + grey[..., None]
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    if params.blur_sigma is not None or params.jpeg_quality is not None:
        out = np.stack([_blur_and_compress(frame, params) for frame in out])
    if params.reencoding is not None:
        out = apply_reencoding(out, params.reencoding)
    out = out[..., ::-1] if colour_order == "BGR" else out
    return np.ascontiguousarray(out)


def _blur_and_compress(frame: np.ndarray, params: SequenceParams) -> np.ndarray:
    if params.blur_sigma is not None:
        frame = cv2.GaussianBlur(frame, (0, 0), params.blur_sigma)
    if params.jpeg_quality is not None:
        ok, encoded = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            frame = decoded[:, :, ::-1]
    return frame
