"""Durations and frame counts the header does not give (browser recordings) are measured from the timestamps, up to a
limit, and the probe uses them: such a file is neither "1 frame long" nor let through when it is too long."""

from __future__ import annotations

import time

import pytest

from ml_app.detection.duration import measure_stream
from ml_app.detection.video import VideoReader, plan_windows, probe_video

from . import media
from .recordings import header_says, jittered_times, recorded_video

TIMES = jittered_times(60)  # about 2 s of a 30 fps webcam
TWO_HOURS = [round(n * 7_200_000 / 59) for n in range(60)]  # 60 frames spread over two hours


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    return {
        "webm": recorded_video(folder / "webcam.webm", TIMES),
        "mkv": recorded_video(folder / "webcam.mkv", TIMES, container="matroska", codec="libx264"),
        "long": recorded_video(folder / "two_hours.webm", TWO_HOURS, width=64, height=48, faces=((4, 4, 40),)),
    }


@pytest.mark.parametrize("kind", ["webm", "mkv", "long"])
def test_the_generated_recordings_have_no_length_in_their_header(recordings, kind):
    header = header_says(recordings[kind])
    assert (header["container_duration"], header["stream_duration"], header["frames"]) == (None, None, 0)
    if kind != "long":
        assert header["average_rate"] is None and header["guessed_rate"] == 1000, "FFmpeg's guess: the time base"


@pytest.mark.parametrize("kind", ["webm", "mkv"])
def test_a_recording_is_measured_from_its_timestamps(recordings, kind):
    measured = measure_stream(recordings[kind])
    interval = (TIMES[-1] - TIMES[0]) / 1000 / 59
    assert measured.complete and measured.frame_count == 60
    assert measured.duration == pytest.approx((TIMES[-1] - TIMES[0]) / 1000 + interval, abs=0.002)
    assert measured.fps == pytest.approx(1 / interval, rel=1e-3)


def test_measuring_stops_as_soon_as_the_limit_is_passed(recordings):
    started = time.perf_counter()
    measured = measure_stream(recordings["long"], limit=600)
    assert not measured.complete
    assert 600 < measured.duration < 600 + 2 * 7200 / 59, "just past the limit, not the whole two hours"
    assert measured.frame_count == 6, "the packets up to the first one past 600 s, not all 60"
    assert time.perf_counter() - started < 2
    whole = measure_stream(recordings["long"])
    assert whole.complete and whole.frame_count == 60 and whole.duration == pytest.approx(7200 * 60 / 59, abs=0.01)


def test_the_probe_measures_a_recording_instead_of_calling_it_one_frame(recordings):
    info = probe_video(recordings["webm"])
    assert info.frame_count == 60 and info.frame_count_exact
    assert info.duration == pytest.approx(measure_stream(recordings["webm"]).duration)
    assert info.fps == pytest.approx(measure_stream(recordings["webm"]).fps), "the timestamps' mean rate"
    assert 20 < info.fps < 35 and info.variable_frame_rate, "not the 1000 fps guessed from the time base"


def test_the_probe_reports_a_long_recording_as_longer_than_the_limit(recordings):
    info = probe_video(recordings["long"], max_seconds=600)
    assert info.duration > 600 and not info.frame_count_exact, "a lower bound: measuring stopped at the limit"
    assert probe_video(recordings["long"]).duration >= 7200, "without a limit, the whole length"


def test_windows_of_a_recording_are_read_at_their_times(recordings):
    info = probe_video(recordings["webm"])
    plans = plan_windows(info, sequence_length=10, max_windows=3)
    assert [plan.start_frame for plan in plans] == [0, 25, 50]
    with VideoReader(info) as reader:
        for plan in plans:
            frames = list(reader.read_window(plan.start_time, plan.length))
            assert len(frames) == 10
            assert abs(frames[0].time - TIMES[plan.start_frame] / 1000) < 0.05, "the window starts where planned"


def test_a_header_that_gives_the_length_is_not_measured(tmp_path, monkeypatch):
    from ml_app.detection import video

    def refuse(*args, **kwargs):
        raise AssertionError("measured although the header says")

    monkeypatch.setattr(video, "measure_stream", refuse)
    info = probe_video(media.face_video(tmp_path / "clip.mp4", frames=12, width=160, height=120))
    assert info.frame_count == 12 and info.frame_count_exact


def test_a_damaged_recording_is_measured_up_to_the_damage(recordings, tmp_path):
    data = recordings["webm"].read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) * 3 // 4])
    measured = measure_stream(cut)
    assert 10 < measured.frame_count < 60 and measured.complete
