"""Re-encoding and downscaling a crop sequence, as a video found on the web has been.

A clip that reaches the site has been through a codec (often several) and a rescale; a model that has only seen the
dataset's own encoding learns its artefacts and flips its verdict when the container changes (an MP4 turned into a
WebM). So augmentation encodes the crops of a sequence with H.264, VP9 or MJPEG at a random quality, in memory with
PyAV, and decodes them again, and sometimes first shrinks and re-enlarges them (a low-resolution source). The frames
of a sequence go through one encoder together, so the codec's inter-frame artefacts are those of a real video.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np

if TYPE_CHECKING:
    from av.video.stream import VideoStream

# codec -> (PyAV encoder, container, pixel format); the formats each encoder takes for 8-bit 4:2:0 video
CODECS = {
    "h264": ("libx264", "mp4", "yuv420p"),
    "vp9": ("libvpx-vp9", "webm", "yuv420p"),
    "mjpeg": ("mjpeg", "avi", "yuvj420p"),
}
# The quality range each codec's knob is drawn from: x264's and VP9's CRF (higher is worse), MJPEG's qscale (2-31).
QUALITY = {"h264": (18, 40), "vp9": (20, 55), "mjpeg": (2, 20)}


@dataclass(frozen=True)
class Reencoding:
    """One sequence's draw: the codec and its quality knob, and the downscale factor (1.0: none)."""

    codec: str | None
    quality: int
    scale: float


def sample_reencoding(
    rng: np.random.Generator, codec_probability: float, downscale_probability: float, scale_range: tuple[float, float]
) -> Reencoding:
    codec = None
    quality = 0
    if rng.random() < codec_probability:
        codec = sorted(CODECS)[int(rng.integers(len(CODECS)))]
        low, high = QUALITY[codec]
        quality = int(rng.integers(low, high + 1))
    scale = float(rng.uniform(*scale_range)) if rng.random() < downscale_probability else 1.0
    return Reencoding(codec, quality, scale)


def apply_reencoding(frames_rgb: np.ndarray, draw: Reencoding) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB -> the same shape after the draw's downscale and codec round trip."""
    out = frames_rgb
    if draw.scale < 1.0:
        out = downscale(out, draw.scale)
    if draw.codec is not None:
        out = codec_round_trip(out, draw.codec, draw.quality)
    return out


def downscale(frames_rgb: np.ndarray, scale: float) -> np.ndarray:
    """Shrink with area averaging and enlarge back with bilinear interpolation: detail lost as a small source loses
    it, the crop's size unchanged."""
    height, width = frames_rgb.shape[1:3]
    small = (max(8, round(width * scale)), max(8, round(height * scale)))
    return np.stack(
        [
            cv2.resize(
                cv2.resize(frame, small, interpolation=cv2.INTER_AREA), (width, height), interpolation=cv2.INTER_LINEAR
            )
            for frame in frames_rgb
        ]
    )


def codec_round_trip(frames_rgb: np.ndarray, codec: str, quality: int, fps: int = 25) -> np.ndarray:
    """Encode the frames as one video in memory and decode them again; one thread (codecs and colour conversion),
    so the result is repeatable (VP9, MJPEG bit for bit; x264 now and then differs by a fraction of a level)."""
    import av

    encoder, container_format, pixel_format = CODECS[codec]
    count, height, width = frames_rgb.shape[:3]
    even = np.pad(frames_rgb, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as container:
        stream = cast("VideoStream", container.add_stream(encoder, rate=fps, options=_encoder_options(codec, quality)))
        stream.width, stream.height = even.shape[2], even.shape[1]
        stream.pix_fmt = pixel_format
        stream.codec_context.thread_count = 1
        for frame in even:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    decoded = []
    with av.open(io.BytesIO(buffer.getvalue()), "r") as container:
        container.streams.video[0].thread_count = 1
        for frame in container.decode(video=0):
            decoded.append(frame.to_ndarray(format="rgb24", threads=1)[:height, :width])
    if len(decoded) != count:  # an encoder that dropped or added frames: keep the input rather than misalign
        return frames_rgb
    return np.ascontiguousarray(np.stack(decoded))


def _encoder_options(codec: str, quality: int) -> dict[str, str]:
    if codec == "h264":
        return {"crf": str(quality), "preset": "veryfast", "threads": "1"}
    if codec == "vp9":
        return {"crf": str(quality), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "0"}
    # MJPEG: pin the quantiser with qmin = qmax (PyAV's ``codec_context.qscale`` is only the fixed-qscale flag, so
    # setting it left every draw at the encoder's default quality)
    return {"qmin": str(quality), "qmax": str(quality)}
