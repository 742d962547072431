"""Measuring a video stream's length from its timestamps, for files whose header does not say.

Browser recordings (MediaRecorder's WebM and Matroska) are written as live streams: the header has no duration, no
frame count and no frame rate (FFmpeg then guesses 1000 fps from the millisecond time base). The probe would take such
a file for one frame long. Here the video stream's packets are demuxed (not decoded: no pixels are made) and their
presentation times read, up to a limit: a file longer than the limit is known to be too long as soon as a timestamp
passes it, however long it really is, so measuring costs at most the limit's worth of packets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av


@dataclass(frozen=True)
class MeasuredStream:
    """What the timestamps say. ``complete`` is False when measuring stopped at the limit: ``duration`` and
    ``frame_count`` are then lower bounds (the stream goes on past the limit)."""

    duration: float  # seconds from the first frame's time to the end of the last frame read
    frame_count: int  # video packets with a timestamp (one frame each)
    fps: float | None  # mean frame rate over the frames read; None with fewer than two distinct times
    complete: bool


def measure_stream(path: str | os.PathLike, limit: float | None = None) -> MeasuredStream:
    """Demux the first video stream of ``path`` and measure it, stopping as soon as its timestamps pass ``limit``
    seconds (``None``: read to the end). A damaged packet ends the measurement where it is."""
    with av.open(str(path), mode="r", metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 1000)
        first: int | None = None
        last: int | None = None
        last_end: int | None = None
        count = 0
        try:
            for packet in container.demux(stream):
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:  # the flush packet at the end
                    continue
                count += 1
                first = stamp if first is None else min(first, stamp)
                last = stamp if last is None else max(last, stamp)
                end = stamp + (packet.duration or 0)
                last_end = end if last_end is None else max(last_end, end)
                if limit is not None and float((last - first) * time_base) > limit:
                    return _measured(first, last, last_end, count, time_base, complete=False)
        except av.error.FFmpegError:
            pass  # what was read before the damage is what can be analysed
    return _measured(first, last, last_end, count, time_base, complete=True)


def _measured(
    first: int | None, last: int | None, last_end: int | None, count: int, time_base: Fraction, complete: bool
) -> MeasuredStream:
    if first is None or last is None or last_end is None:
        return MeasuredStream(duration=0.0, frame_count=0, fps=None, complete=complete)
    span = float((last - first) * time_base)
    fps = (count - 1) / span if count > 1 and span > 0 else None
    # The last frame lasts one mean frame interval: the packet durations of such files are missing or one tick.
    ending = 1.0 / fps if fps else float((last_end - last) * time_base)
    return MeasuredStream(duration=span + ending, frame_count=count, fps=fps, complete=complete)
