"""Browser-recording-like media for the tests: WebM or Matroska written as MediaRecorder writes them, as a live
stream whose header holds no duration, no frame count and no frame rate (millisecond timestamps only).

FFmpeg's muxer in live mode already leaves out the duration and the cues, but still writes each track's
DefaultDuration (its frame rate); a browser does not, so that element is overwritten with an EBML Void element of the
same size."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from . import media

_DEFAULT_DURATION = b"\x23\xe3\x83"  # the Matroska element ID of a track's DefaultDuration
_VOID = 0xEC


def jittered_times(frames: int, interval_ms: int = 33, jitter_ms: int = 17) -> list[int]:
    """Millisecond timestamps of a webcam-like recording: about ``interval_ms`` apart, never evenly (so that FFmpeg
    cannot guess a frame rate from them either)."""
    times = [0]
    for n in range(1, frames):
        times.append(times[-1] + interval_ms - 5 + (n * 7919) % (jitter_ms + 1))
    return times


def strip_default_duration(data: bytes) -> bytes:
    """``data`` with every track's DefaultDuration replaced by a Void element of the same length."""
    position = data.find(_DEFAULT_DURATION)
    while position >= 0:
        size_byte = data[position + 3]
        assert size_byte & 0x80, "a one-byte size, as FFmpeg writes it"
        total = 4 + (size_byte & 0x7F)
        void = bytes([_VOID, 0x80 | (total - 2)]) + bytes(total - 2)
        data = data[:position] + void + data[position + total :]
        position = data.find(_DEFAULT_DURATION, position + total)
    return data


def recorded_video(
    path: Path,
    times_ms: Sequence[int],
    width: int = 320,
    height: int = 240,
    faces: Sequence[tuple[int, int, int]] = ((70, 20, 180),),
    container: str = "webm",
    codec: str = "libvpx",
) -> Path:
    """A recording of the astronaut's portrait with one frame at each of ``times_ms``, written as a browser does."""
    options = {"live": "1"}
    with av.open(str(path), "w", format=container, options=options) as output:
        stream = output.add_stream(codec)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for number, stamp in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(media.scene(width, height, faces, number), format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, 1000)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    path.write_bytes(strip_default_duration(path.read_bytes()))
    return path


def header_says(path: Path) -> dict:
    """What the header alone tells FFmpeg (what the probe had before measuring)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "container_duration": container.duration,
            "stream_duration": stream.duration,
            "frames": stream.frames,
            "average_rate": stream.average_rate,
            "guessed_rate": stream.guessed_rate,
        }
