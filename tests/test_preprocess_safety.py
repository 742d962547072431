"""Preprocessing output that cannot be corrupted silently: one writer per folder (or shard), clip files written whole,
a damaged clip file redone on the next run, and a clear error (not a bare EOFError) when training meets one."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from model_creation.training.extract import ClipFileError, load_clip, save_clip
from model_creation.training.manifest import load_manifest
from model_creation.training.preprocess import folder_lock

from . import media
from .training_data import synthetic_manifest

PREP_ARGS = ["--layout", "folder", "--sequence-length", "8", "--windows", "2", "--image-size", "64", "--no-progress"]


def run(command: str, *args) -> str:
    out = StringIO()
    call_command(command, *map(str, args), stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for label, name in (("real", "one"), ("fake", "two")):
        (root / label).mkdir()
        media.face_video(root / label / f"{name}.mp4", frames=24)
    return root


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(two_videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out, None), pytest.raises(CommandError, match="Another preprocessing run is writing to"):
        run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS)
    with folder_lock(out, (1, 2)):  # a shard shares the folder with other shards, not with a whole-folder run
        with pytest.raises(CommandError, match=r"shard 1 of 2, or the whole folder"):
            run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS, "--shard", "1/2")
        with pytest.raises(CommandError, match="Another preprocessing run"):
            run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS)
        run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS, "--shard", "2/2")
        assert (out / "manifest-shard-2-of-2.json").is_file()
    # released when a run ends, even with an error: the whole folder can be run now
    run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS)
    assert len(load_manifest(out / "manifest.json").videos) == 2


def test_an_emptied_or_missing_clip_file_makes_the_next_run_redo_that_video_only(two_videos, tmp_path):
    out = tmp_path / "out"
    run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS)
    videos = {video.video: video for video in load_manifest(out / "manifest.json").videos}
    damaged, kept = videos["real/one.mp4"], videos["fake/two.mp4"]
    assert damaged.clips and kept.clips
    damaged_file = out / damaged.clips[0].file
    kept_file = out / kept.clips[0].file
    stamp = kept_file.stat().st_mtime_ns
    damaged_file.write_bytes(b"")  # what a run killed mid-write used to leave
    report = run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS)
    assert "1 video(s) already done" in report and "1 processed now" in report
    assert load_clip(damaged_file).shape == (8, 64, 64, 3)
    assert kept_file.stat().st_mtime_ns == stamp, "the intact video is not redone"
    (out / kept.clips[-1].file).unlink()
    assert "1 processed now" in run("preprocess_videos", two_videos, "--output", out, *PREP_ARGS)
    assert not list(out.rglob("*.partial")), "no temporary clip file is left behind"


def test_save_clip_writes_the_whole_file_or_leaves_none(tmp_path):
    crops = np.zeros((2, 8, 8, 3), np.uint8)
    target = tmp_path / "w000_t0.npz"
    save_clip(target, crops, np.arange(2), np.zeros((2, 4), np.int32))
    assert load_clip(target).shape == crops.shape and [p.name for p in tmp_path.iterdir()] == [target.name]
    unpicklable = np.array([lambda: 0], dtype=object)
    with pytest.raises(Exception, match="pickle"):  # fails while writing: the earlier complete file stays whole
        save_clip(target, crops, np.arange(2), unpicklable)
    assert load_clip(target).shape == crops.shape and [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize(
    "content", [b"", b"PK\x03\x04 truncated zip", b"not a clip at all"], ids=["empty", "truncated", "garbage"]
)
def test_an_unreadable_clip_file_is_a_clear_error_naming_it(tmp_path, content):
    path = tmp_path / "w000_t0.npz"
    path.write_bytes(content)
    with pytest.raises(ClipFileError, match=r"w000_t0\.npz.*empty or truncated.*preprocess_videos"):
        load_clip(path)


def test_training_on_a_damaged_clip_stops_with_that_message(tmp_path):
    manifest_path = synthetic_manifest(tmp_path / "clips", videos_per_label=3, length=4, size=32)
    manifest = load_manifest(manifest_path)
    broken = manifest.clip_path(manifest.videos[0].clips[0])
    broken.write_bytes(b"")
    with pytest.raises(CommandError, match=r"cannot be read.*empty or truncated"):
        run(
            "train_model",
            *("--manifest", manifest_path, "--output", tmp_path / "run", "--epochs", "1", "--pretrained", "random"),
            *("--backbone", "mobilenet_v2", "--hidden-size", "8", "--batch-size", "2", "--workers", "0"),
            "--no-progress",
        )
