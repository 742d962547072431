"""Following every face through the consecutive frames of one window.

The tracker is fed frames one by one and hands each frame back, with its final face boxes, once nothing later can
change them. It keeps only ``lookahead`` frames, so a 100-frame window of a 4K video costs as much memory as a
10-frame one. Per frame:

* every ``full_detect_every`` frames (and on the window's last frame if ``scan_last_frame``) the whole frame is
  scanned (``detect``), which finds faces that entered; a new face is followed backwards through the frames still held;
* every face not found by a full scan is re-detected near where it should be (``detect_near``: milliseconds);
* a face missed for up to ``max_gap`` frames gets boxes interpolated between its neighbours, and one missed in the
  first or last ``max_gap`` frames of the window gets its nearest box; longer gaps stay empty and are reported.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from .faces import Detection, FaceDetector
from .geometry import Box
from .video import DecodedFrame

_MATCH_IOU = 0.3


@dataclass(frozen=True)
class TrackedFrame:
    """A frame of the window with the box of every track present in it."""

    offset: int
    frame: DecodedFrame
    boxes: dict[int, Box]
    filled: frozenset[int]  # tracks whose box here was filled in from neighbouring frames, not detected


@dataclass
class _Track:
    id: int
    detections: dict[int, Detection] = field(default_factory=dict)

    @property
    def first_seen(self) -> int:
        return min(self.detections)

    @property
    def last_seen(self) -> int:
        return max(self.detections)

    def last_box(self) -> Box:
        return self.detections[self.last_seen].box

    def predicted_box(self, offset: int) -> Box:
        """Where the face should be at ``offset``, moving on at the speed of its last two detections."""
        last = self.last_seen
        box = self.detections[last].box
        earlier = [o for o in self.detections if o < last]
        if not earlier or offset <= last:
            return box
        previous = max(earlier)
        step = (offset - last) / (last - previous)
        before = self.detections[previous].box
        return box.shifted(
            (box.x0 - before.x0 + box.x1 - before.x1) / 2 * step, (box.y0 - before.y0 + box.y1 - before.y1) / 2 * step
        )


class WindowTracker:
    """Tracks faces through one window of ``length`` frames; see the module docstring."""

    def __init__(self, detector: FaceDetector, length: int):
        self.detector = detector
        self.settings = detector.settings
        self.length = length
        self.lookahead = max(self.settings.full_detect_every, self.settings.max_gap + 1)
        self._buffer: deque[tuple[int, DecodedFrame]] = deque()
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._next_offset = 0
        self.seconds = 0.0

    # --- feeding ---------------------------------------------------------------------------------------------------

    def push(self, frame: DecodedFrame) -> list[TrackedFrame]:
        """Add the next frame of the window; returns the frames whose boxes are now final."""
        offset = self._next_offset
        self._next_offset += 1
        self._buffer.append((offset, frame))
        started = time.perf_counter()
        if offset % self.settings.full_detect_every == 0 or (
            self.settings.scan_last_frame and offset == self.length - 1
        ):
            self._full_scan(offset, frame)
        for track in self._live_tracks(offset):  # faces the full scan (if any) did not find again
            self._follow(track, offset, frame)
        self.seconds += time.perf_counter() - started
        return self._release(offset - self.lookahead)

    def finish(self) -> list[TrackedFrame]:
        """The frames still held, once the window has no more frames."""
        return self._release(self._next_offset - 1, window_end=self._next_offset - 1)

    @property
    def track_ids(self) -> list[int]:
        return [track.id for track in self._tracks]

    def detections_of(self, track_id: int) -> dict[int, Detection]:
        return dict(next(t for t in self._tracks if t.id == track_id).detections)

    # --- detection ---------------------------------------------------------------------------------------------------

    def _live_tracks(self, offset: int) -> list[_Track]:
        return [
            t for t in self._tracks if offset - t.last_seen <= self.settings.max_gap + 1 and offset not in t.detections
        ]

    def _follow(self, track: _Track, offset: int, frame: DecodedFrame) -> bool:
        found = self.detector.detect_near(frame.image, track.predicted_box(offset))
        if found is not None:
            track.detections[offset] = found
            return True
        return False

    def _full_scan(self, offset: int, frame: DecodedFrame) -> None:
        claimed: set[int] = set()
        new_tracks: list[_Track] = []
        for found in self.detector.detect(frame.image):
            match, best = None, _MATCH_IOU
            for track in self._tracks:
                if track.id in claimed or offset - track.last_seen > self.settings.max_gap + 1:
                    continue
                reference = track.predicted_box(offset)
                overlap = found.box.iou(reference)
                if overlap >= best:
                    match, best = track, overlap
            if match is not None:
                claimed.add(match.id)
                match.detections[offset] = found
                continue
            live = sum(1 for t in self._tracks if offset - t.last_seen <= self.settings.max_gap + 1)
            if live >= self.settings.max_faces:
                continue  # detections come largest first: the faces kept are the largest ones
            track = _Track(id=self._next_id, detections={offset: found})
            self._next_id += 1
            self._tracks.append(track)
            claimed.add(track.id)
            new_tracks.append(track)
        for track in new_tracks:
            self._follow_backwards(track, offset)
            self._join_earlier(track)

    def _follow_backwards(self, track: _Track, offset: int) -> None:
        """Look for a newly found face in the frames still held before the one it was found in."""
        misses = 0
        box = track.detections[offset].box
        for earlier, frame in reversed([item for item in self._buffer if item[0] < offset]):
            found = self.detector.detect_near(frame.image, box)
            if found is None:
                misses += 1
                if misses > self.settings.max_gap:
                    return
                continue
            misses = 0
            track.detections[earlier] = found
            box = found.box

    def _join_earlier(self, track: _Track) -> None:
        """A face lost for a few frames and found again by a full scan continues its earlier track."""
        first = track.first_seen
        start_box = track.detections[first].box
        for earlier in self._tracks:
            if earlier is track or earlier.last_seen >= first:
                continue
            gap = first - earlier.last_seen - 1
            if gap <= self.settings.max_gap and earlier.predicted_box(first).iou(start_box) >= _MATCH_IOU:
                earlier.detections.update(track.detections)
                self._tracks.remove(track)
                return

    # --- releasing final frames --------------------------------------------------------------------------------------

    def _box_at(self, track: _Track, offset: int, window_end: int | None) -> tuple[Box | None, bool]:
        """The box of ``track`` at ``offset`` and whether it was filled in (not detected there)."""
        detections = track.detections
        if offset in detections:
            return detections[offset].box, False
        before = [o for o in detections if o < offset]
        after = [o for o in detections if o > offset]
        gap = self.settings.max_gap
        if before and after:
            previous, following = max(before), min(after)
            if following - previous - 1 <= gap:
                t = (offset - previous) / (following - previous)
                return detections[previous].box.lerp(detections[following].box, t), True
            return None, False
        if after and not before:
            first = min(after)
            if first <= gap:  # missed at the start of the window
                return detections[first].box, True
            return None, False
        if before and not after and window_end is not None:
            last = max(before)
            if window_end - last <= gap and offset <= window_end:  # missed at the end of the window
                return detections[last].box, True
        return None, False

    def _release(self, upto: int, window_end: int | None = None) -> list[TrackedFrame]:
        released: list[TrackedFrame] = []
        while self._buffer and self._buffer[0][0] <= upto:
            offset, frame = self._buffer.popleft()
            boxes: dict[int, Box] = {}
            filled: set[int] = set()
            for track in self._tracks:
                box, was_filled = self._box_at(track, offset, window_end)
                if box is not None:
                    boxes[track.id] = box
                    if was_filled:
                        filled.add(track.id)
            released.append(TrackedFrame(offset=offset, frame=frame, boxes=boxes, filled=frozenset(filled)))
        return released
