"""Issue 15, part 2: a folder of frame images is a video: found by the folder and csv layouts, ordered by frame
number, probed and read like a video file, and preprocessed into the same windows and crops; a folder without
images or with frames of different sizes is a broken video in the report, never a crash."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from ml_app.detection.errors import EmptyVideoFile, UndecodableVideo
from ml_app.detection.frame_folder import FrameFolderReader, frame_files, is_frame_folder, probe_frame_folder
from ml_app.detection.preprocessing import Preprocessing
from ml_app.detection.video import plan_windows, probe_video
from model_creation.training.extract import ExtractSettings
from model_creation.training.layouts import read_layout
from model_creation.training.manifest import load_manifest

from . import media

FPS = 25


def frames(count: int = 24, width: int = 320, height: int = 240) -> list[np.ndarray]:
    return [media.scene(width, height, ((90, 30, 160),), number) for number in range(count)]


def write_folder(folder: Path, images: list[np.ndarray], suffix: str = ".png", **options) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, image in reversed(list(enumerate(images))):  # written out of order: the names decide
        Image.fromarray(image).save(folder / f"frame_{number}{suffix}", **options)
    return folder


def write_lossless_video(path: Path, images: list[np.ndarray], fps: int = FPS) -> Path:
    """PNG-coded frames in a QuickTime file: the video holds exactly the folder's pixels."""
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_frames_are_ordered_by_number_and_read_like_a_video(tmp_path):
    folder = write_folder(tmp_path / "clip", [media.index_pattern(320, 240, n) for n in range(12)])
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".frame_99.png").write_bytes(b"hidden: left out")
    names = [path.name for path in frame_files(folder)]
    assert names == [f"frame_{n}.png" for n in range(12)], "frame_10 after frame_9, not after frame_1"
    info = probe_frame_folder(folder, fps=10)
    assert (info.width, info.height, info.frame_count, info.fps, info.container) == (320, 240, 12, 10.0, "frames")
    assert info.duration == pytest.approx(1.2) and info.frame_count_exact and not info.has_audio
    with FrameFolderReader(info) as reader:
        window = list(reader.read_window(0.8, 5))
        assert [frame.index for frame in window] == [8, 9, 10, 11], "the folder ends inside the window"
        assert [media.read_index(frame.image) for frame in window] == [8, 9, 10, 11]
        assert window[0].time == pytest.approx(0.8) and reader.ended_at == pytest.approx(1.1)
        again = list(reader.read_window(0.2, 2))
        assert [media.read_index(frame.image) for frame in again] == [2, 3], "any window, in any order"
    assert is_frame_folder(folder) and not is_frame_folder(tmp_path)


def test_a_frame_folder_gives_the_same_windows_and_crops_as_the_video_of_its_frames(tmp_path):
    images = frames()
    png = write_folder(tmp_path / "real" / "png", images)
    write_folder(tmp_path / "real" / "jpg", images, ".jpg", quality=95)
    video = write_lossless_video(tmp_path / "real" / "video.mov", images)
    video_info, folder_info = probe_video(video), probe_frame_folder(png, fps=FPS)
    assert (folder_info.width, folder_info.height, folder_info.frame_count) == (
        video_info.width,
        video_info.height,
        video_info.frame_count,
    )
    assert plan_windows(folder_info, 8, 2) == plan_windows(video_info, 8, 2)

    settings = ExtractSettings(Preprocessing(image_size=64), 8, 2, frame_fps=FPS)
    extractor = settings.extractor()
    entries = {entry.relpath: entry for entry in read_layout("folder", tmp_path)}
    assert set(entries) == {"real/png", "real/jpg", "real/video.mov"}
    records = {name: extractor.extract(entry, tmp_path / "out") for name, entry in entries.items()}
    reference = records["real/video.mov"]
    assert reference.status == "ok" and len(reference.clips) == 2
    # PNG frames: the video's pixels, so identical crops; JPEG noise moves the box a pixel or so: near-identical
    for name, box_pixels, median, mean in (("real/png", 0, 0, 0), ("real/jpg", 4, 3, 10)):
        record = records[name]
        assert record.status == "ok", record.reason
        assert (record.fps, record.frame_count, record.windows) == (FPS, 24, 2)
        assert [(c.window, c.start_frame, c.track) for c in record.clips] == [
            (c.window, c.start_frame, c.track) for c in reference.clips
        ]
        for clip, expected in zip(record.clips, reference.clips, strict=True):
            mine, theirs = np.load(tmp_path / "out" / clip.file), np.load(tmp_path / "out" / expected.file)
            difference = np.abs(mine["crops"].astype(int) - theirs["crops"].astype(int))
            assert np.median(difference) <= median and difference.mean() <= mean, name
            assert np.abs(mine["boxes"] - theirs["boxes"]).max() <= box_pixels, name
            assert mine["frames"].tolist() == theirs["frames"].tolist()


def test_bad_folders_raise_video_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyVideoFile, match="without frame images"):
        probe_frame_folder(tmp_path / "empty")
    mixed = write_folder(tmp_path / "mixed", frames(3))
    Image.fromarray(frames(1, 200, 100)[0]).save(mixed / "frame_3.png")
    with pytest.raises(UndecodableVideo, match=r"differ in size: 'frame_0.png' is 320 x 240, 'frame_3.png' is 200 x"):
        probe_frame_folder(mixed)


def test_csv_and_folder_layouts_run_frame_folders_through_preprocess_videos(tmp_path):
    data = tmp_path / "data"
    write_folder(data / "real" / "video1", frames(16), ".jpg")
    write_folder(data / "fake" / "Deepfakes" / "video2", frames(16), ".webp", lossless=True)
    (data / "fake" / "empty").mkdir(parents=True)
    mixed = write_folder(data / "fake" / "mixed", frames(9))
    Image.fromarray(frames(1, 160, 120)[0]).save(mixed / "frame_9.png")
    (data / "real" / "with_video").mkdir()
    write_lossless_video(data / "real" / "with_video" / "clip.mov", frames(4))
    Image.fromarray(frames(1)[0]).save(data / "real" / "with_video" / "cover.jpg")

    found = {entry.relpath: entry for entry in read_layout("folder", data)}
    assert set(found) == {"real/video1", "fake/Deepfakes/video2", "fake/mixed", "real/with_video/clip.mov"}, (
        "a folder of images and no video is a video; an empty folder is nothing; a folder with a video holds it"
    )
    assert found["fake/Deepfakes/video2"].method == "Deepfakes" and found["real/video1"].label == "REAL"

    (data / "labels.csv").write_text("real/video1,0\nfake/Deepfakes/video2,1\nfake/empty,1\nfake/mixed,1\n")
    out = StringIO()
    call_command(
        "preprocess_videos",
        data / "labels.csv",
        "--layout",
        "csv",
        "--output",
        tmp_path / "out",
        "--fps",
        "10",
        "--sequence-length",
        "8",
        "--windows",
        "2",
        "--image-size",
        "64",
        "--no-progress",
        stdout=out,
    )
    report = out.getvalue()
    manifest = load_manifest(tmp_path / "out" / "manifest.json")
    videos = {video.video: video for video in manifest.videos}
    for name in ("real/video1", "fake/Deepfakes/video2"):
        assert videos[name].status == "ok" and len(videos[name].clips) == 2, videos[name].reason
        assert (videos[name].fps, videos[name].frame_count, videos[name].width) == (10.0, 16, 320)
    assert videos["real/video1"].label == "REAL" and videos["fake/Deepfakes/video2"].label == "FAKE"
    assert videos["fake/empty"].status == "broken" and "without frame images" in videos["fake/empty"].reason
    assert videos["fake/mixed"].status == "broken" and "differ in size" in videos["fake/mixed"].reason
    assert "fake/empty: broken: " in report and "fake/mixed: broken: " in report
    settings = (tmp_path / "out" / "preprocess.json").read_text()
    assert '"frame_fps": 10.0' in settings, "a resumed run must use the same frame rate"
