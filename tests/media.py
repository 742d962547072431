"""Media the tests make for themselves: videos built from a real face photo (scikit-image's astronaut), faceless
videos, rotated and variable-frame-rate videos, and broken files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

# The astronaut's head and shoulders; the full photo also holds a mission patch that HOG takes for a face.
_PORTRAIT = skimage.data.astronaut()[0:260, 100:360]


def portrait(size: int = 200) -> np.ndarray:
    """The astronaut's portrait as an RGB square of ``size`` pixels (her face is about 40% of it)."""
    return cv2.resize(_PORTRAIT, (size, size), interpolation=cv2.INTER_AREA)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured, faceless background."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def scene(
    width: int,
    height: int,
    faces: Sequence[tuple[int, int, int]],
    frame_number: int = 0,
) -> np.ndarray:
    """A frame with portraits pasted at ``(x, y, size)``, drifting one pixel per frame so the video is not still."""
    frame = background(width, height)
    for left, top, size in faces:
        x, y = left + frame_number % 7, top + (frame_number // 3) % 3
        patch = portrait(size)[: height - y, : width - x]
        frame[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return frame


def index_pattern(width: int, height: int, number: int) -> np.ndarray:
    """A frame whose brightness bands encode ``number`` so a test can read back which frame it got."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    bits = [(number >> bit) & 1 for bit in range(10)]
    band = width // 10
    for bit, value in enumerate(bits):
        frame[:, bit * band : (bit + 1) * band] = 230 if value else 20
    return frame


def read_index(image: np.ndarray) -> int:
    """Inverse of :func:`index_pattern` (robust to compression)."""
    height, width = image.shape[:2]
    band = width // 10
    number = 0
    for bit in range(10):
        if image[height // 4 : 3 * height // 4, bit * band + band // 4 : (bit + 1) * band - band // 4].mean() > 125:
            number |= 1 << bit
    return number


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    codec: str = "libx264",
    rotation: int = 0,
    faststart: bool = False,
    timestamps_ms: Sequence[int] | None = None,
    gop: int | None = None,
    audio_seconds: float = 0.0,
) -> Path:
    """Encode RGB frames. ``rotation`` is the display rotation (counter-clockwise degrees, as phones store it);
    ``timestamps_ms`` gives each frame's time for variable frame rate; ``gop`` the keyframe interval."""
    frames = list(frames)
    height, width = frames[0].shape[:2]
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        codec_options = {"preset": "ultrafast"} if codec == "libx264" else {}
        if gop:
            codec_options.update({"g": str(gop), "keyint_min": str(gop)} if codec == "libx264" else {})
            stream.codec_context.gop_size = gop
        stream.options = codec_options
        if timestamps_ms is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        audio = container.add_stream("aac", rate=16000) if audio_seconds else None
        for number, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if timestamps_ms is not None:
                frame.pts = timestamps_ms[number]
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            _write_tone(container, audio, audio_seconds)
    return path


def _write_tone(container, stream, seconds: float) -> None:
    rate = stream.rate
    samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, len(samples), frame_size):
        chunk = samples[start : start + frame_size]
        if len(chunk) < frame_size:
            chunk = np.pad(chunk, (0, frame_size - len(chunk)))
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        _write_tone(container, stream, seconds)
    return path


def face_video(
    path: Path,
    frames: int = 40,
    width: int = 480,
    height: int = 360,
    faces: Sequence[tuple[int, int, int]] = ((140, 60, 200),),
    **options,
) -> Path:
    """A video of the astronaut's portrait(s) on a textured background."""
    return write_video(path, (scene(width, height, faces, n) for n in range(frames)), **options)


def faceless_video(path: Path, frames: int = 30, width: int = 320, height: int = 240, **options) -> Path:
    return write_video(path, (np.roll(background(width, height, seed=1), n, axis=1) for n in range(frames)), **options)


# EXIF orientation -> how to turn upright pixels so that a viewer applying that orientation shows them upright again.
_STORED_FOR_ORIENTATION = {
    1: lambda a: a,
    3: lambda a: np.rot90(a, 2),
    6: lambda a: np.rot90(a, 1),
    8: lambda a: np.rot90(a, 3),
}


def photo(
    path: Path,
    width: int = 480,
    height: int = 360,
    faces: Sequence[tuple[int, int, int]] = ((140, 60, 200),),
    orientation: int = 1,
    quality: int = 92,
) -> Path:
    """A still of the astronaut's portrait(s) on a textured background, in the format ``path``'s suffix names.

    With ``orientation`` (EXIF 3, 6 or 8) the pixels are stored turned, as a phone camera stores them, and the EXIF tag
    says how to turn them upright: a reader that applies it sees the same upright picture as ``orientation=1``.
    """
    from PIL import Image

    upright = scene(width, height, faces)
    stored = np.ascontiguousarray(_STORED_FOR_ORIENTATION[orientation](upright))
    image = Image.fromarray(stored)
    options: dict = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    if orientation != 1:
        exif = image.getexif()
        exif[0x0112] = orientation
        options["exif"] = exif
    image.save(path, **options)
    return path
