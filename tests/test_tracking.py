"""Following faces through a window: several faces give several tracks, short gaps are filled, long ones reported."""

from __future__ import annotations

import numpy as np
import pytest

from ml_app.detection.faces import build_detector
from ml_app.detection.preprocessing import DetectorSettings
from ml_app.detection.tracking import WindowTracker
from ml_app.detection.video import DecodedFrame

from . import media


def _frames(images):
    return [DecodedFrame(index=n, time=n / 25, image=image) for n, image in enumerate(images)]


def _track(images, backend: str, **settings):
    detector = build_detector(DetectorSettings(backend=backend, **settings))
    tracker = WindowTracker(detector, len(images))
    released = []
    for frame in _frames(images):
        released.extend(tracker.push(frame))
    released.extend(tracker.finish())
    return tracker, released


@pytest.fixture(params=["face_recognition", "centerface"])
def track(request):
    """The tracker with each detector backend: following faces must not depend on which one finds them."""
    return lambda images, **settings: _track(images, request.param, **settings)


def test_every_frame_comes_back_once_in_order(track):
    images = [media.scene(480, 360, [(140, 60, 200)], n) for n in range(20)]
    tracker, released = track(images, full_detect_every=5, max_gap=2)
    assert [item.offset for item in released] == list(range(20))
    assert len(tracker.track_ids) == 1
    assert all(len(item.boxes) == 1 and not item.filled for item in released)


def test_two_faces_give_two_tracks(track):
    images = [media.scene(720, 360, [(30, 60, 220), (420, 80, 220)], n) for n in range(16)]
    tracker, released = track(images)
    assert len(tracker.track_ids) == 2
    assert all(len(item.boxes) == 2 for item in released), "both faces are in every frame"
    left, right = sorted(tracker.track_ids, key=lambda tid: released[0].boxes[tid].center[0])
    assert all(item.boxes[left].center[0] < 360 < item.boxes[right].center[0] for item in released)


def test_a_short_gap_is_filled_from_neighbouring_frames(track):
    images = [media.scene(480, 360, [(140, 60, 200)], n) for n in range(20)]
    for hidden in (7, 8):
        images[hidden] = media.background(480, 360)
    tracker, released = track(images, full_detect_every=10, max_gap=3)
    assert len(tracker.track_ids) == 1
    tid = tracker.track_ids[0]
    assert all(tid in item.boxes for item in released)
    assert {item.offset for item in released if tid in item.filled} == {7, 8}
    filled = released[7].boxes[tid]
    assert filled.center[0] == pytest.approx(
        np.mean([released[6].boxes[tid].center[0], released[9].boxes[tid].center[0]]), abs=15
    )


def test_a_long_gap_is_reported_as_frames_without_a_face(track):
    images = [media.scene(480, 360, [(140, 60, 200)], n) for n in range(24)]
    for hidden in range(8, 16):
        images[hidden] = media.background(480, 360)
    _, released = track(images, full_detect_every=4, max_gap=2)
    empty = [item.offset for item in released if not item.boxes]
    assert empty == list(range(8, 16)), "no box is invented for the frames without a face"
    assert all(item.boxes for item in released if item.offset not in range(8, 16))


def test_a_face_found_late_is_followed_back_through_held_frames(track):
    # The first full scan sees nothing (the face is covered in frame 0 only); the next one, at frame 8, finds it and
    # the tracker looks back through the frames it still holds.
    images = [media.scene(480, 360, [(140, 60, 200)], n) for n in range(16)]
    images[0] = media.background(480, 360)
    tracker, released = track(images, full_detect_every=8, max_gap=2)
    tid = tracker.track_ids[0]
    detections = tracker.detections_of(tid)
    assert min(detections) == 1, "found at frame 8, followed back to frame 1"
    assert tid in released[0].boxes and tid in released[0].filled, "frame 0 is filled: a miss at the window's edge"


def test_the_number_of_faces_followed_is_capped_largest_first(track):
    images = [media.scene(720, 360, [(30, 60, 220), (460, 150, 160)], n) for n in range(8)]
    tracker, released = track(images, max_faces=1)
    assert len(tracker.track_ids) == 1
    assert released[0].boxes[tracker.track_ids[0]].center[0] < 360, "the larger face is the one kept"


def test_memory_is_bounded_by_the_lookahead_not_the_window():
    images = [media.scene(320, 240, [(60, 20, 180)], n) for n in range(40)]
    detector = build_detector(DetectorSettings(full_detect_every=5, max_gap=2))
    tracker = WindowTracker(detector, 40)
    held = []
    for frame in _frames(images):
        tracker.push(frame)
        held.append(len(tracker._buffer))
    assert max(held) <= tracker.lookahead + 1
