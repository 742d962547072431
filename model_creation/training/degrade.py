"""Making a photo's face look like a face from a video, so that "looks like a photo" tells a model nothing.

Photos of faces (FFHQ, CelebA, UTKFace) are sharp, clean and large; faces in the videos a user brings are small,
blurred by the camera and compressed by H.264 (FaceForensics++ c23 to c40). A model that sees photos only as reals
learns "sharp means real" and pushes every compressed video face towards FAKE. So every face that comes from a
photo, the real one and its self-blended fake alike, goes through what a video face went through, drawn afresh for
each item and epoch from one distribution whatever its label:

1. brought to the size the crop had in a video, drawn from the face sizes of the training videos themselves
   (``face_sizes``: widths of the detector's box in the videos' own pixels; the crop holds the box and its margin):
   shrunk when the video face was smaller than the crop (detail lost), enlarged when it was larger;
2. blurred (a camera's optics and motion) and given sensor noise, each with some probability, at that size;
3. encoded with H.264 at a constant rate factor between c23's and c40's, at that size, and decoded;
4. brought back to the crop's size as ``crop_face`` would: enlarged from a small face, shrunk (area filter) from a
   large one, so compression artefacts are as fine or as coarse as in a video crop of that size.

Sizes are capped at ``max_scale`` times the crop, which bounds the encoder's work.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .reencode import codec_round_trip

# FaceForensics++ c23 and c40 are H.264 at these constant rate factors.
CRF_RANGE = (23, 40)
# When no video face sizes are known: widths (in a video's pixels) spread over what the shared clips show.
DEFAULT_FACE_SIZES = (48.0, 64.0, 80.0, 96.0, 120.0, 150.0, 200.0, 260.0)
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)  # what a record keeps of the face sizes


@dataclass(frozen=True)
class DegradeSettings:
    """The distribution a photo face's degradation is drawn from."""

    face_sizes: tuple[float, ...] = DEFAULT_FACE_SIZES  # face box widths in video pixels, drawn uniformly
    margin: float = 0.25  # the crop's margin around the face box, on every side (the preprocessing's)
    crf: tuple[int, int] = CRF_RANGE
    blur: float = 0.4  # probability of a Gaussian blur ...
    blur_sigma: tuple[float, float] = (0.4, 1.2)  # ... with a sigma (at the small size) from this range
    noise: float = 0.4  # probability of Gaussian sensor noise ...
    noise_sigma: tuple[float, float] = (1.0, 4.0)  # ... with a standard deviation in 0-255 levels from this range
    max_scale: float = 1.5  # the video crop's size is taken as at most this many times the crop's
    extra: dict = field(default_factory=dict)  # where the face sizes came from (recorded, not used)

    def to_dict(self) -> dict:
        data = asdict(self)
        sizes = np.asarray(self.face_sizes, dtype=np.float64)
        # a checkpoint records the distribution's shape, not thousands of numbers
        data["face_sizes"] = {
            "count": int(sizes.size),
            "quantiles": {str(q): round(float(np.quantile(sizes, q)), 1) for q in QUANTILES},
        }
        return data


@dataclass(frozen=True)
class DegradeParams:
    """One item's draw."""

    scale: float  # the crop's size in the video over its size here (< 1: a smaller face, > 1: a larger one)
    crf: int
    blur_sigma: float | None
    noise_sigma: float | None
    noise_seed: int


def sample_params(settings: DegradeSettings, crop_size: int, rng: np.random.Generator) -> DegradeParams:
    """One draw; the same calls on ``rng`` whatever the item's label, so both classes are degraded alike."""
    face = float(settings.face_sizes[int(rng.integers(len(settings.face_sizes)))])
    crop_in_video = face * (1.0 + 2.0 * settings.margin)  # the crop's side in the video's pixels
    scale = min(settings.max_scale, crop_in_video / crop_size)
    crf = int(rng.integers(settings.crf[0], settings.crf[1] + 1))
    blur = float(rng.uniform(*settings.blur_sigma)) if rng.random() < settings.blur else None
    noise = float(rng.uniform(*settings.noise_sigma)) if rng.random() < settings.noise else None
    return DegradeParams(scale, crf, blur, noise, int(rng.integers(2**31)))


def degrade(frames_rgb: np.ndarray, params: DegradeParams) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB crops -> the same shape, degraded as ``params`` says."""
    height, width = frames_rgb.shape[1:3]
    video = (max(16, round(width * params.scale)), max(16, round(height * params.scale)))
    out = frames_rgb
    if video != (width, height):
        towards = cv2.INTER_AREA if params.scale < 1 else cv2.INTER_LINEAR
        out = np.stack([cv2.resize(frame, video, interpolation=towards) for frame in out])
    if params.blur_sigma is not None:
        out = np.stack([cv2.GaussianBlur(frame, (0, 0), params.blur_sigma) for frame in out])
    if params.noise_sigma is not None:
        noise = np.random.default_rng(params.noise_seed).normal(0.0, params.noise_sigma, out.shape)
        out = np.clip(out.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
    out = codec_round_trip(np.ascontiguousarray(out), "h264", params.crf)
    if video != (width, height):
        back = cv2.INTER_LINEAR if params.scale < 1 else cv2.INTER_AREA  # crop_face's choice for each direction
        out = np.stack([cv2.resize(frame, (width, height), interpolation=back) for frame in out])
    return np.ascontiguousarray(out)


def video_face_sizes(boxes_per_clip: list[np.ndarray]) -> tuple[float, ...]:
    """Face widths (the median box width of each clip, in the video's pixels) from the clips' stored boxes."""
    widths = [float(np.median(boxes[:, 2] - boxes[:, 0])) for boxes in boxes_per_clip if len(boxes)]
    return tuple(sorted(w for w in widths if w > 0)) or DEFAULT_FACE_SIZES
