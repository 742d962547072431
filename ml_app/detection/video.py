"""Probing videos and decoding the frames of sampled windows, one frame at a time.

Why PyAV: its wheels carry FFmpeg, so no system package is needed; it exposes the display matrix (phone videos are
stored sideways and rotated on display), per-frame timestamps (variable frame rate) and the keyframe index, which
lets the reader decide per window whether seeking or decoding on is cheaper. FFmpeg decodes with frame threads;
frames are converted to RGB only when a window needs them, once each, and non-reference frames before a window are
not decoded at all. The reader holds a single frame at a time: memory does not grow with the video's length.
"""

from __future__ import annotations

import bisect
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .duration import measure_stream
from .errors import EmptyVideoFile, NotAVideo, NoVideoStream, UndecodableVideo, VideoNotFound
from .frames import (
    DECODE_THREAD_TYPE,
    DECODE_THREADS,
    SKIP_NONREF_CODECS,
    SKIP_NONREF_CONTAINERS,
    ThreadType,
    convert_frame,
    release_frame_memory,
)
from .timing import StageTimer

# Containers that FFmpeg opens but that hold a still picture, not a video.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe", "tiff_pipe", "svg_pipe")


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns about a video. Width and height are as displayed, after rotation."""

    path: str
    container: str
    codec: str
    width: int
    height: int
    rotation: int  # degrees counter-clockwise applied to decoded frames to display them: 0, 90, 180 or 270
    fps: float
    frame_count: int
    frame_count_exact: bool  # False when the container gives no count and it is estimated from duration x fps
    duration: float  # seconds
    start_time: float  # seconds; presentation time of the first frame, subtracted from every frame time
    variable_frame_rate: bool
    has_audio: bool
    size_bytes: int
    keyframe_times: tuple[float, ...] = field(default=(), repr=False)  # from the container index, relative times

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("keyframe_times")
        return data


@dataclass(frozen=True)
class DecodedFrame:
    """One displayed frame: RGB pixels after rotation, its time from the video's start and its estimated index."""

    index: int
    time: float
    image: np.ndarray  # (H, W, 3) uint8, RGB


@dataclass(frozen=True)
class WindowPlan:
    """A window of consecutive frames to analyse, placed by the sampler."""

    index: int
    start_frame: int
    start_time: float
    length: int


# --- probing --------------------------------------------------------------------------------------------------------


def _sniff(path: Path) -> str:
    """A short human description of what a non-video file looks like, for error messages."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if head[4:8] == b"ftyp":
        return "an MP4/MOV file whose index cannot be read: it is probably truncated (an incomplete upload or copy)"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "a Matroska/WebM file that cannot be read: it is probably truncated or damaged"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a video container FFmpeg recognises"
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if printable >= 0.95 * max(1, len(text)):
        return "a text file"
    return "not a video container FFmpeg recognises"


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise NotAVideo(f"'{path.name}' is not a readable video: it is {_sniff(path)}.") from exc


def _rotation_of(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation of a frame, snapped to a multiple of 90 degrees."""
    try:
        degrees = frame.rotation
    except (AttributeError, ValueError):
        return 0
    return round((degrees or 0) / 90.0) * 90 % 360


def _stream_seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe_video(path: str | os.PathLike, max_seconds: float | None = None) -> VideoInfo:
    """Read a video's header and decode its first frame, so that a file that probes is known to decode.

    A header without duration or frame count (browser recordings) is completed by measuring the timestamps, up to
    ``max_seconds`` when given: past it the measurement stops, and the duration and count are lower bounds (inexact).

    Raises a :class:`~ml_app.detection.errors.VideoError` subclass with a message that names the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoNotFound(f"'{path}' does not exist or is not a file.")
    size = path.stat().st_size
    if size == 0:
        raise EmptyVideoFile(f"'{path.name}' is empty (0 bytes): the upload or copy did not complete.")

    container = _open(path)
    try:
        stream = _video_stream(container, path)
        first = _first_frame(container, stream, path)
        rotation = _rotation_of(first)
        time_base = stream.time_base

        fps_rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(fps_rate) if fps_rate else 25.0
        base = float(stream.base_rate) if stream.base_rate else fps
        variable = abs(base - fps) > 0.01 * fps

        start = _stream_seconds(stream.start_time, time_base)
        if start is None:
            start = first.time or 0.0
        duration = _stream_seconds(stream.duration, time_base)
        if not duration and container.duration:
            duration = container.duration / 1_000_000
        count = int(stream.frames or 0)
        exact = count > 0
        if not exact and not duration:  # nothing in the header: measure the timestamps (duration.py)
            measured = measure_stream(path, max_seconds)
            count, duration, exact = measured.frame_count, measured.duration, measured.complete
            fps = measured.fps or fps
            variable = abs(base - fps) > 0.01 * fps
        if not exact:
            count = max(1, round((duration or 0.0) * fps))
        if not duration:
            duration = count / fps

        keyframes = _keyframe_times(stream, start)
        coded_w, coded_h = first.width, first.height
        width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
        return VideoInfo(
            path=str(path),
            container=container.format.name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            rotation=rotation,
            fps=fps,
            frame_count=count,
            frame_count_exact=exact,
            duration=float(duration),
            start_time=float(start),
            variable_frame_rate=variable,
            has_audio=bool(container.streams.audio),
            size_bytes=size,
            keyframe_times=tuple(keyframes),
        )
    finally:
        container.close()


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """The first video stream; NotAVideo or NoVideoStream when the file has none worth reading."""
    if container.format.name in _IMAGE_FORMATS:
        raise NotAVideo(f"'{path.name}' is a still image ({container.format.name}), not a video.")
    if not container.streams.video:
        if container.streams.audio:
            raise NoVideoStream(f"'{path.name}' holds audio but no video stream: there are no faces to analyse.")
        raise NoVideoStream(f"'{path.name}' holds no video stream.")
    return container.streams.video[0]


def _keyframe_times(stream: av.VideoStream, start: float) -> list[float]:
    """Seconds (from the video's start) of the keyframes the container's index lists; empty without an index."""
    try:
        entries = stream.index_entries
    except (AttributeError, NotImplementedError):
        entries = None
    time_base = stream.time_base
    if not entries or time_base is None:
        return []
    return sorted(float(entry.timestamp * time_base) - start for entry in entries if entry.is_keyframe)


def _first_frame(container: av.container.InputContainer, stream, path: Path) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise UndecodableVideo(
            f"'{path.name}' has a video stream ({stream.codec_context.name}) but its frames cannot be decoded: "
            f"the file is damaged or truncated ({exc})."
        ) from exc
    raise UndecodableVideo(
        f"'{path.name}' has a video stream but not a single frame decodes: the file is truncated or damaged."
    )


# --- sampling -------------------------------------------------------------------------------------------------------


def plan_windows(info: VideoInfo, sequence_length: int, max_windows: int) -> list[WindowPlan]:
    """Place up to ``max_windows`` windows of ``sequence_length`` consecutive frames evenly over the whole video.

    Windows do not overlap; a video that holds one window gets it in its middle. An empty list means the video is
    shorter than one window (the caller reports "insufficient frames").
    """
    if sequence_length < 1 or max_windows < 1:
        raise ValueError("sequence_length and max_windows must be positive")
    total = info.frame_count
    if total < sequence_length:
        return []
    count = max(1, min(max_windows, total // sequence_length))
    last_start = total - sequence_length
    starts = [last_start // 2] if count == 1 else [round(i * last_start / (count - 1)) for i in range(count)]
    return [
        WindowPlan(index=i, start_frame=start, start_time=start / info.fps, length=sequence_length)
        for i, start in enumerate(starts)
    ]


# --- decoding -------------------------------------------------------------------------------------------------------


class VideoReader:
    """Decodes the frames of windows in order, seeking only where the keyframe index says it saves work.

    Use as a context manager. ``read_window`` yields :class:`DecodedFrame` objects; the reader keeps none of them.
    Frames before a window are decoded but not converted, and those of them that are not reference frames are not
    even decoded (H.264/HEVC in MP4/MOV/Matroska). With a ``timer``, the seconds spent decoding and converting count
    for its ``decode`` stage, in whichever thread reads.
    """

    def __init__(
        self,
        info: VideoInfo,
        threads: int = DECODE_THREADS,
        thread_type: ThreadType = DECODE_THREAD_TYPE,
        timer: StageTimer | None = None,
        skip_nonref: bool = True,
    ):
        self.info = info
        self._container = _open(Path(info.path))
        self._stream = self._container.streams.video[0]
        self._context = self._stream.codec_context
        self._context.thread_type = thread_type
        self._context.thread_count = threads
        self._discard = self._context.skip_frame  # what is discarded when nothing may be skipped (FFmpeg's default)
        self._skip_nonref = (
            skip_nonref and self._context.name in SKIP_NONREF_CODECS and info.container in SKIP_NONREF_CONTAINERS
        )
        self._reformatter = VideoReformatter()
        self._timer = timer
        self._time_base = self._stream.time_base
        self._packets: Iterator[av.Packet] | None = None
        self._decoded: deque[av.VideoFrame] = deque()  # frames the last packet gave and not yet taken
        self._ended = False  # the stream ended (or a damaged frame ended it) since the last seek
        self._timed = False  # frames carry timestamps, so packets can be placed before or in a window
        self._last_time: float | None = None  # time of the last frame taken from the decoder
        self.ended_at: float | None = None  # time at which decoding stopped early, if it did
        self.frames_decoded = 0  # frames the decoder gave back (skipped non-reference frames are not among them)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()
        release_frame_memory()

    def _should_seek(self, target: float) -> bool:
        if self._packets is None or self._last_time is None or target < self._last_time:
            return True
        keys = self.info.keyframe_times
        if keys:
            position = bisect.bisect_right(keys, target + 1e-6) - 1
            return position >= 0 and keys[position] > self._last_time + 1e-6
        return target - self._last_time > 2.0

    def _seek(self, target: float) -> None:
        offset = int((target + self.info.start_time) / self._time_base) if self._time_base else 0
        try:
            self._container.seek(max(0, offset), stream=self._stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._packets = self._container.demux(self._stream)
        self._decoded.clear()
        self._ended = False
        self._last_time = None

    def _before(self, time: float, start_time: float) -> bool:
        """Whether a frame shown at ``time`` comes before the window that starts at ``start_time``."""
        return time + 0.5 / self.info.fps < start_time

    def _skippable(self, packet: av.Packet, start_time: float) -> bool:
        if not (self._skip_nonref and self._timed) or packet.pts is None or not self._time_base:
            return False
        return self._before(float(packet.pts * self._time_base) - self.info.start_time, start_time)

    def _next(self, start_time: float) -> av.VideoFrame | None:
        """The next frame in display order, None at the end; a packet of a frame shown before ``start_time`` is
        decoded with non-reference frames discarded."""
        assert self._packets is not None
        while not self._decoded:
            if self._ended:
                return None
            try:
                packet = next(self._packets, None)
                if packet is None:
                    self._ended = True
                    return None
                self._context.skip_frame = "NONREF" if self._skippable(packet, start_time) else self._discard
                self._decoded.extend(packet.decode())
            except av.error.FFmpegError:  # a damaged frame ends the stream; read_window records where (ended_at)
                self._ended = True
                return None
        frame = self._decoded.popleft()
        self.frames_decoded += 1
        self._timed = frame.time is not None
        if frame.time is not None:
            self._last_time = float(frame.time) - self.info.start_time
        else:  # streams without timestamps: count frames
            self._last_time = 0.0 if self._last_time is None else self._last_time + 1.0 / self.info.fps
        return frame

    def read_window(self, start_time: float, count: int) -> Iterator[DecodedFrame]:
        """Yield up to ``count`` consecutive frames starting at the first frame shown at or after ``start_time``.

        Fewer frames come when the video ends first; ``ended_at`` then tells where.
        """
        started = time.perf_counter()
        if self._should_seek(start_time):
            self._seek(start_time)
        produced = 0
        while produced < count:
            frame = self._next(start_time)
            if frame is None:
                self.ended_at = self._last_time
                break
            assert self._last_time is not None
            if self._before(self._last_time, start_time):
                continue
            image = convert_frame(frame, self._reformatter, self.info.rotation)
            produced += 1
            decoded = DecodedFrame(index=round(self._last_time * self.info.fps), time=self._last_time, image=image)
            if self._timer is not None:
                self._timer.add("decode", time.perf_counter() - started)
            yield decoded
            started = time.perf_counter()
        if self._timer is not None:
            self._timer.add("decode", time.perf_counter() - started)
