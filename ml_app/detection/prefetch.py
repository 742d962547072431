"""Decoding the planned windows in a thread of their own, ahead of the face search.

FFmpeg's decoding, swscale's conversion and dlib's detection all release the GIL, so on two cores the next frames
are decoded and converted while faces are looked for in the current ones (and the network, in the scorer's thread,
scores finished windows). The frames travel through a queue bounded in bytes, so memory stays flat whatever the
video's length or resolution; the frames and their pixels are exactly the reader's, in the same order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .timing import StageTimer
from .video import DecodedFrame, VideoReader, WindowPlan

PREFETCH_BYTES = 48 * 1024 * 1024  # RGB frames decoded ahead at most: 8 frames of 1080p, 2 of 4K (bench/README.md)
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class _Item:
    window: int  # the plan's position in the list
    frame: DecodedFrame | None = None  # None: the window has no more frames
    error: BaseException | None = None  # decoding failed; raised in the reading thread


class WindowPrefetcher:
    """Reads ``plans`` (in order) with ``reader`` in a background thread; ``read_window`` hands the frames over.

    Use as a context manager, inside the reader's: leaving it stops the thread before the reader closes. Windows
    must be asked for in the planned order. With a ``timer``, the seconds the caller waits for frames count for its
    ``decode_wait`` stage (the reader's own ``decode`` stage counts the decoding).
    """

    def __init__(
        self,
        reader: VideoReader,
        plans: Sequence[WindowPlan],
        timer: StageTimer | None = None,
        max_bytes: int = PREFETCH_BYTES,
    ):
        self.reader = reader
        self.plans = list(plans)
        frame_bytes = max(1, reader.info.width * reader.info.height * 3)
        self.capacity = max(2, max_bytes // frame_bytes)  # frames held in the queue at most
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=self.capacity)
        self._timer = timer
        self._next = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decoder", daemon=True)
        self._thread.start()

    @property
    def ended_at(self) -> float | None:
        """Where decoding stopped early (see :attr:`VideoReader.ended_at`); final once every window has been read."""
        return self.reader.ended_at

    def __enter__(self) -> WindowPrefetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop decoding and wait for the thread (at most the frame it is decoding)."""
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(_POLL_SECONDS)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _put(self, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        number = 0
        try:
            for number, plan in enumerate(self.plans):
                for frame in self.reader.read_window(plan.start_time, plan.length):
                    if not self._put(_Item(number, frame)):
                        return
                if not self._put(_Item(number)):
                    return
        except BaseException as exc:  # handed to the reading thread, which raises it
            self._put(_Item(number, error=exc))

    def read_window(self, start_time: float, count: int) -> Iterator[DecodedFrame]:
        """The frames of the next planned window, which must start at ``start_time`` and hold ``count`` frames."""
        if self._next >= len(self.plans):
            raise ValueError("every planned window has been read")
        plan = self.plans[self._next]
        if (plan.start_time, plan.length) != (start_time, count):
            raise ValueError(
                f"window {plan.index} ({plan.length} frames from {plan.start_time:.3f} s) is next, "
                f"not {count} frames from {start_time:.3f} s: windows are read in the planned order"
            )
        self._next += 1
        return self._frames(self._next - 1)

    def _get(self) -> _Item:
        started = time.perf_counter()
        try:
            while True:
                try:
                    return self._queue.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if not self._thread.is_alive() and self._queue.empty():
                        raise RuntimeError("the decoding thread has stopped") from self._error
        finally:
            if self._timer is not None:
                self._timer.add("decode_wait", time.perf_counter() - started)

    def _frames(self, number: int) -> Iterator[DecodedFrame]:
        while True:
            item = self._get()
            if item.error is not None:
                self._error = item.error
                raise item.error
            if item.window < number:  # what is left of a window its reader did not finish
                continue
            if item.frame is None:
                return
            yield item.frame
