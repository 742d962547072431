"""Probing, window sampling over the whole video, decoding only what windows need, and unusable files."""

from __future__ import annotations

import numpy as np
import pytest

from ml_app.detection import errors
from ml_app.detection.video import VideoReader, plan_windows, probe_video

from . import media


@pytest.fixture(scope="module")
def numbered_video(media_dir):
    """200 frames whose pixels say their own number; keyframes every 50 frames so some windows need a seek."""
    frames = (media.index_pattern(320, 240, n) for n in range(200))
    return media.write_video(media_dir / "numbered.mp4", frames, fps=25, gop=50)


def test_probe_reports_size_rate_count_and_duration(numbered_video):
    info = probe_video(numbered_video)
    assert (info.width, info.height, info.rotation) == (320, 240, 0)
    assert info.fps == pytest.approx(25.0)
    assert info.frame_count == 200 and info.frame_count_exact
    assert info.duration == pytest.approx(8.0, abs=0.05)
    assert not info.variable_frame_rate and not info.has_audio
    assert info.codec == "h264"
    assert info.keyframe_times[:4] == pytest.approx([0.0, 2.0, 4.0, 6.0], abs=0.01)


def test_windows_are_spread_over_the_whole_video(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=20, max_windows=5)
    starts = [plan.start_frame for plan in plans]
    assert starts[0] == 0, "the first window starts at the first frame"
    assert starts[-1] + 20 == 200, "the last window ends at the last frame, not somewhere near the start"
    gaps = np.diff(starts)
    assert gaps.min() >= 20, "windows do not overlap"
    assert gaps.max() - gaps.min() <= 1, "windows are evenly spaced"


def test_window_count_is_capped_by_what_fits(numbered_video):
    info = probe_video(numbered_video)
    assert len(plan_windows(info, sequence_length=100, max_windows=8)) == 2
    single = plan_windows(info, sequence_length=150, max_windows=8)
    assert [plan.start_frame for plan in single] == [25], "a lone window sits in the middle"
    assert plan_windows(info, sequence_length=201, max_windows=8) == [], "shorter than one window: nothing to plan"


def test_reader_returns_exactly_the_planned_frames(numbered_video):
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=10, max_windows=6)
    with VideoReader(info) as reader:
        for plan in plans:
            frames = list(reader.read_window(plan.start_time, plan.length))
            numbers = [media.read_index(frame.image) for frame in frames]
            assert numbers == list(range(plan.start_frame, plan.start_frame + 10))
            assert [frame.index for frame in frames] == numbers
            assert frames[0].time == pytest.approx(plan.start_frame / 25.0, abs=1e-3)


def test_reader_can_go_back_and_skip_ahead(numbered_video):
    info = probe_video(numbered_video)
    with VideoReader(info) as reader:
        late = [media.read_index(f.image) for f in reader.read_window(7.0, 3)]
        early = [media.read_index(f.image) for f in reader.read_window(0.4, 3)]
    assert late == [175, 176, 177]
    assert early == [10, 11, 12]


def test_rotated_phone_video_is_decoded_upright(media_dir):
    # Stored sideways (as phones do) with a display matrix saying "rotate 90 degrees clockwise to show".
    upright = media.scene(240, 320, [(20, 60, 200)])
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # what the sensor wrote: the picture lying on its side
    path = media.write_video(media_dir / "phone.mp4", [stored] * 12, rotation=-90)
    info = probe_video(path)
    assert info.rotation == 270
    assert (info.width, info.height) == (240, 320)
    with VideoReader(info) as reader:
        frame = next(reader.read_window(0.0, 1))
    assert frame.image.shape == (320, 240, 3)
    difference = np.abs(frame.image.astype(int) - upright.astype(int)).mean()
    assert difference < 12, "the decoded frame matches the upright picture, not the stored sideways one"


def test_variable_frame_rate_uses_real_timestamps(media_dir):
    timestamps = [0, 40, 80, 200, 240, 500, 540, 580, 620, 1000, 1040, 1080]
    frames = [media.index_pattern(160, 120, n) for n in range(len(timestamps))]
    path = media.write_video(media_dir / "vfr.mp4", frames, timestamps_ms=timestamps)
    info = probe_video(path)
    assert info.variable_frame_rate
    with VideoReader(info) as reader:
        decoded = list(reader.read_window(0.0, len(timestamps)))
    assert [round(f.time * 1000) for f in decoded] == timestamps
    assert [media.read_index(f.image) for f in decoded] == list(range(len(timestamps)))


def test_video_ending_early_yields_fewer_frames(media_dir):
    path = media.write_video(media_dir / "short.mp4", [media.index_pattern(160, 120, n) for n in range(15)])
    info = probe_video(path)
    assert plan_windows(info, sequence_length=20, max_windows=4) == []
    with VideoReader(info) as reader:
        frames = list(reader.read_window(0.0, 20))
    assert len(frames) == 15
    assert reader.ended_at == pytest.approx(14 / 25, abs=1e-3)


# --- unusable files: each gets its own error and a message that names the problem -----------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(errors.VideoNotFound):
        probe_video(tmp_path / "nothing.mp4")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(errors.EmptyVideoFile, match="empty"):
        probe_video(path)


def test_text_file_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("These are my meeting notes, not a video.\n" * 20)
    with pytest.raises(errors.NotAVideo, match="text file"):
        probe_video(path)


def test_html_page_renamed_mp4(tmp_path):
    path = tmp_path / "download.mp4"
    path.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    with pytest.raises(errors.NotAVideo, match="HTML page"):
        probe_video(path)


def test_truncated_video(tmp_path, one_face_video):
    # The MP4 index (moov) comes last unless the file was made for streaming: a cut file has no index.
    data = one_face_video.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.NotAVideo, match="truncated"):
        probe_video(path)


def test_truncated_streaming_video_decodes_what_is_there(tmp_path):
    frames = [media.index_pattern(320, 240, n) for n in range(100)]
    whole = media.write_video(tmp_path / "stream.mp4", frames, faststart=True, gop=10)
    data = whole.read_bytes()
    path = tmp_path / "stream_cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.5)])
    info = probe_video(path)
    assert info.frame_count == 100, "the index still promises every frame"
    with VideoReader(info) as reader:
        frames = list(reader.read_window(0.0, 100))
    assert 10 < len(frames) < 100
    assert reader.ended_at is not None and reader.ended_at < info.duration - 1


def test_audio_only_file(tmp_path):
    path = media.write_audio_only(tmp_path / "voice.mp4")
    with pytest.raises(errors.NoVideoStream, match="audio but no video"):
        probe_video(path)


def test_still_image_renamed_mp4(tmp_path):
    import cv2

    path = tmp_path / "photo.mp4"
    path.write_bytes(cv2.imencode(".png", media.portrait(64))[1].tobytes())
    with pytest.raises(errors.NotAVideo, match="still image"):
        probe_video(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(errors.NotAVideo):
        probe_video(path)


# --- decoding cost: threads, frames left undecoded, one conversion per frame --------------------------------------


def _b_frame_video(path, keyint: int):
    """150 numbered frames encoded with B-frames (a reference B in the middle of each group, two that are not, as
    x264's defaults write), a keyframe every ``keyint`` frames."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        params = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3:b-adapt=0:b-pyramid=normal"
        stream.options = {"preset": "fast", "x264-params": params}
        for number in range(150):
            for packet in stream.encode(av.VideoFrame.from_ndarray(media.index_pattern(320, 240, number))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def b_frame_video(media_dir):
    """One keyframe: every window is reached by decoding on, never by seeking."""
    return _b_frame_video(media_dir / "b_frames.mp4", keyint=150)


@pytest.fixture(scope="module")
def b_frame_seek_video(media_dir):
    """A keyframe every 30 frames: most windows are reached by seeking."""
    return _b_frame_video(media_dir / "b_frames_keyint30.mp4", keyint=30)


def _read_all(info, plans, **reader_options):
    with VideoReader(info, **reader_options) as reader:
        frames = [frame for plan in plans for frame in reader.read_window(plan.start_time, plan.length)]
        return frames, reader.frames_decoded


@pytest.mark.parametrize("thread_type", ["SLICE", "FRAME", "AUTO"])
@pytest.mark.parametrize("video", ["numbered_video", "b_frame_video", "b_frame_seek_video"])
def test_threaded_decoding_gives_the_frames_of_single_threaded_decoding(request, video, thread_type):
    info = probe_video(request.getfixturevalue(video))
    plans = plan_windows(info, sequence_length=10, max_windows=5)  # gaps of 20-30 frames between windows
    reference, _ = _read_all(info, plans, threads=1, thread_type="NONE", skip_nonref=False)
    for threads in (0, 2):
        frames, _ = _read_all(info, plans, threads=threads, thread_type=thread_type)
        assert (
            [f.index for f in frames]
            == [f.index for f in reference]
            == [n for plan in plans for n in range(plan.start_frame, plan.start_frame + plan.length)]
        )
        assert [f.time for f in frames] == [f.time for f in reference]
        assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, reference, strict=True)), "same pixels"


def test_non_reference_frames_before_a_window_are_not_decoded(b_frame_video):
    info = probe_video(b_frame_video)
    plans = plan_windows(info, sequence_length=10, max_windows=4)  # 0-9, 47-56, 93-102, 140-149
    everything, decoded_all = _read_all(info, plans, skip_nonref=False)
    skipping, decoded = _read_all(info, plans)
    assert decoded_all == 150, "without skipping every frame up to the last window is decoded"
    assert 40 + 10 <= decoded < 120, "the non-reference B-frames between the windows were left undecoded"
    assert [f.index for f in skipping] == [f.index for f in everything]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(skipping, everything, strict=True))
    assert [media.read_index(f.image) for f in skipping] == [f.index for f in skipping]


def test_only_frames_of_windows_are_converted_and_each_once(numbered_video, monkeypatch):
    from ml_app.detection import video

    converted: list[int] = []
    original = video.convert_frame

    def counting(frame, reformatter, rotation):
        image = original(frame, reformatter, rotation)
        converted.append(media.read_index(image))
        return image

    monkeypatch.setattr(video, "convert_frame", counting)
    info = probe_video(numbered_video)
    plans = plan_windows(info, sequence_length=10, max_windows=5)
    frames, decoded = _read_all(info, plans)
    wanted = [n for plan in plans for n in range(plan.start_frame, plan.start_frame + plan.length)]
    assert converted == wanted == [f.index for f in frames], "one conversion per frame of a window, none other"
    assert decoded > len(wanted), "the frames between windows were decoded (no seek saves work here) but not converted"


def test_the_conversion_gives_pyav_rgb24_pixels(b_frame_video):
    import av
    from av.video.reformatter import VideoReformatter

    from ml_app.detection.video import convert_frame

    reformatter = VideoReformatter()
    with av.open(str(b_frame_video)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number % 7 == 0:
                assert np.array_equal(convert_frame(frame, reformatter, 0), frame.to_ndarray(format="rgb24"))


def test_decoding_time_is_counted_by_the_reader(numbered_video):
    from ml_app.detection.timing import StageTimer

    timer = StageTimer()
    info = probe_video(numbered_video)
    with VideoReader(info, timer=timer) as reader:
        assert len(list(reader.read_window(4.0, 10))) == 10
    assert set(timer.seconds) == {"decode"} and timer.seconds["decode"] > 0
