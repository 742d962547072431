"""Decoding ahead in a thread of its own: the same frames as the reader gives, in order, bounded, stopped cleanly."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ml_app.detection.prefetch import WindowPrefetcher
from ml_app.detection.timing import StageTimer
from ml_app.detection.video import VideoReader, plan_windows, probe_video

from . import media


@pytest.fixture(scope="module")
def numbered_video(media_dir):
    frames = (media.index_pattern(320, 240, n) for n in range(200))
    return media.write_video(media_dir / "prefetch_numbered.mp4", frames, fps=25, gop=50)


def _decoder_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "decoder"]


def test_prefetched_windows_are_the_readers_frames(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=10, max_windows=6)
    with VideoReader(info) as reader:
        direct = [list(reader.read_window(plan.start_time, plan.length)) for plan in plans]
    timer = StageTimer()
    with VideoReader(info, timer=timer) as reader, WindowPrefetcher(reader, plans, timer) as prefetcher:
        ahead = [list(prefetcher.read_window(plan.start_time, plan.length)) for plan in plans]
    assert [[f.index for f in window] for window in ahead] == [[f.index for f in window] for window in direct]
    pairs = [pair for one, two in zip(ahead, direct, strict=True) for pair in zip(one, two, strict=True)]
    assert all(np.array_equal(a.image, b.image) for a, b in pairs)
    assert [media.read_index(f.image) for f in ahead[-1]] == list(range(190, 200))
    assert {"decode", "decode_wait"} <= set(timer.seconds)
    assert not _decoder_threads(), "the thread has ended"


def test_the_queue_is_bounded_in_bytes(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=50, max_windows=4)
    frame_bytes = 320 * 240 * 3
    with VideoReader(info) as reader, WindowPrefetcher(reader, plans, max_bytes=5 * frame_bytes) as prefetcher:
        assert prefetcher.capacity == 5
        frames = prefetcher.read_window(plans[0].start_time, plans[0].length)
        next(frames)
        threading.Event().wait(0.3)  # the thread decodes ahead until the queue is full, then waits
        assert prefetcher._queue.qsize() <= 5
        assert reader.frames_decoded <= 1 + 5 + 1 + 4  # taken, queued, in hand, decoder delay (ultrafast: none)
    assert not _decoder_threads()


def test_windows_must_be_read_in_the_planned_order(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=10, max_windows=3)
    with VideoReader(info) as reader, WindowPrefetcher(reader, plans) as prefetcher:
        with pytest.raises(ValueError, match="planned order"):
            prefetcher.read_window(plans[1].start_time, plans[1].length)
        for plan in plans:
            assert len(list(prefetcher.read_window(plan.start_time, plan.length))) == 10
        with pytest.raises(ValueError, match="every planned window"):
            prefetcher.read_window(plans[0].start_time, plans[0].length)


def test_a_window_left_unfinished_does_not_leak_into_the_next(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=10, max_windows=3)
    with VideoReader(info) as reader, WindowPrefetcher(reader, plans) as prefetcher:
        first = prefetcher.read_window(plans[0].start_time, plans[0].length)
        assert media.read_index(next(first).image) == 0
        second = [f.index for f in prefetcher.read_window(plans[1].start_time, plans[1].length)]
    assert second == list(range(plans[1].start_frame, plans[1].start_frame + 10))


def test_leaving_early_stops_the_thread(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=40, max_windows=4)
    with VideoReader(info) as reader, WindowPrefetcher(reader, plans, max_bytes=1) as prefetcher:
        next(prefetcher.read_window(plans[0].start_time, plans[0].length))
        assert _decoder_threads(), "decoding ahead, blocked on the full queue"
    assert not _decoder_threads()


def test_a_decoding_failure_is_raised_where_the_frames_are_read(numbered_video, monkeypatch):
    from ml_app.detection import video

    def broken(frame, reformatter, rotation):
        raise MemoryError("no room for a frame")

    monkeypatch.setattr(video, "convert_frame", broken)
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=10, max_windows=2)
    with VideoReader(info) as reader, WindowPrefetcher(reader, plans) as prefetcher:
        with pytest.raises(MemoryError, match="no room"):
            list(prefetcher.read_window(plans[0].start_time, plans[0].length))
        with pytest.raises(RuntimeError, match="stopped"):
            list(prefetcher.read_window(plans[1].start_time, plans[1].length))
