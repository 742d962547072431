"""Issue 4: dataset layouts, preprocessing, training (single process, resumed, DDP), evaluation and ONNX export."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.errors import NotACheckpoint
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video
from model_creation.training import augment, layouts, metrics
from model_creation.training.dataset import ClipItem
from model_creation.training.evaluate import level_scores
from model_creation.training.layouts import LayoutError, read_layout
from model_creation.training.manifest import ClipRecord, VideoRecord, load_manifest
from model_creation.training.splits import assign_splits

from . import media
from .conftest import REPO, shared_path
from .training_data import synthetic_manifest

# mobilenet_v2, a 16-unit LSTM, 64-pixel crops (from the manifest), data loaded in the main process.
TINY_MODEL = [
    "--backbone",
    "mobilenet_v2",
    "--hidden-size",
    "16",
    "--batch-size",
    "4",
    "--lr",
    "3e-3",
    "--workers",
    "0",
    "--warmup-epochs",
    "0.2",
    "--no-progress",
]
TINY = [*TINY_MODEL, "--pretrained", "random"]


def run(command: str, *args) -> str:
    out = StringIO()
    call_command(command, *map(str, args), stdout=out)
    return out.getvalue()


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def read_history(output: Path) -> list[dict[str, str]]:
    with open(output / "history.csv") as handle:
        return list(csv.DictReader(handle))


def by_path(entries) -> dict:
    return {entry.relpath: entry for entry in entries}


# --- layouts --------------------------------------------------------------------------------------------------------


def test_folder_layout_reads_labels_splits_methods_and_groups(tmp_path):
    touch(
        tmp_path,
        "real/012_a.mp4",
        "fake/Deepfakes/012_b.mp4",
        "train/real/7_c.MOV",
        "test/fake/9_d.mp4",
        "other/ignored.mp4",
        "real/notes.txt",
    )
    entries = by_path(read_layout("folder", tmp_path))
    assert set(entries) == {"real/012_a.mp4", "fake/Deepfakes/012_b.mp4", "train/real/7_c.MOV", "test/fake/9_d.mp4"}
    assert [entries[p].label for p in sorted(entries)] == ["FAKE", "REAL", "FAKE", "REAL"]
    assert entries["fake/Deepfakes/012_b.mp4"].method == "Deepfakes"
    assert entries["train/real/7_c.MOV"].split == "train" and entries["test/fake/9_d.mp4"].split == "test"
    assert entries["real/012_a.mp4"].split == "" and entries["real/012_a.mp4"].group == "folder:012_a"
    grouped = by_path(read_layout("folder", tmp_path, group_regex=r"(\d+)_"))
    assert grouped["real/012_a.mp4"].group == grouped["fake/Deepfakes/012_b.mp4"].group == "folder:012"
    assert grouped["train/real/7_c.MOV"].group == "folder:7"
    with pytest.raises(LayoutError, match="does not match"):
        read_layout("folder", tmp_path, group_regex=r"^zzz")
    with pytest.raises(LayoutError, match="no videos under a real/ or fake/"):
        read_layout("folder", tmp_path / "other")


def test_csv_layout_with_or_without_header_and_numeric_labels(tmp_path):
    (tmp_path / "plain.csv").write_text("a.mp4,REAL\nb.mp4,fake\nc.mp4,1\nd.mp4,0\n")
    entries = by_path(read_layout("csv", tmp_path / "plain.csv"))
    assert [entries[n].label for n in ("a.mp4", "b.mp4", "c.mp4", "d.mp4")] == ["REAL", "FAKE", "FAKE", "REAL"]
    assert entries["a.mp4"].path == (tmp_path / "a.mp4").resolve()
    flipped = by_path(read_layout("csv", tmp_path / "plain.csv", one_means="REAL"))
    assert flipped["c.mp4"].label == "REAL" and flipped["d.mp4"].label == "FAKE"
    (tmp_path / "header.csv").write_text(
        "file,label,split,original\nx.mp4,REAL,train,\ny.mp4,FAKE,val,x.mp4\nz.mp4,FAKE,,\n"
    )
    entries = by_path(read_layout("csv", tmp_path / "header.csv", dataset="mine"))
    assert entries["y.mp4"].group == entries["x.mp4"].group == "mine:x", "a fake goes with its original"
    assert entries["z.mp4"].group == "mine:z" and entries["y.mp4"].split == "val" and entries["z.mp4"].split == ""
    (tmp_path / "bad.csv").write_text("file,label\nx.mp4,REAL\ny.mp4,maybe\n")
    with pytest.raises(LayoutError, match="line 3"):
        read_layout("csv", tmp_path / "bad.csv")


def test_ffpp_layout_groups_source_pairs_and_uses_official_splits(tmp_path):
    videos = "c23/videos"
    touch(tmp_path, *(f"original_sequences/youtube/{videos}/{n}.mp4" for n in ("000", "003", "100", "200")))
    touch(
        tmp_path,
        f"manipulated_sequences/Deepfakes/{videos}/000_003.mp4",
        f"manipulated_sequences/Deepfakes/{videos}/003_000.mp4",
        f"manipulated_sequences/Face2Face/{videos}/100_200.mp4",
        "manipulated_sequences/Deepfakes/masks/videos/000_003.mp4",
        "manipulated_sequences/Deepfakes/c40/videos/000_003.mp4",
    )
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.json").write_text('[["000", "003"]]')
    (splits / "test.json").write_text('[["100", "200"]]')
    entries = by_path(read_layout("ffpp", tmp_path, splits_dir=splits, compression="c23"))
    assert len(entries) == 7, "masks and other compressions are left out"
    real, fake = (
        entries[f"original_sequences/youtube/{videos}/000.mp4"],
        entries[f"manipulated_sequences/Deepfakes/{videos}/000_003.mp4"],
    )
    assert real.label == "REAL" and fake.label == "FAKE" and fake.method == "Deepfakes" and real.method == ""
    first_pair = {e.group for p, e in entries.items() if "000" in Path(p).stem or "003" in Path(p).stem}
    second_pair = {e.group for p, e in entries.items() if "100" in Path(p).stem or "200" in Path(p).stem}
    assert len(first_pair) == 1 and len(second_pair) == 1 and first_pair != second_pair
    assert {e.split for p, e in entries.items() if "100" in p or "200" in p} == {"test"}
    assert {e.split for p, e in entries.items() if "000" in p} == {"train"}
    everything = read_layout("ffpp", tmp_path)
    assert len(everything) == 8 and all(e.split == "" for e in everything)


def test_celebdf_layout_groups_by_identity_and_reads_the_test_list(tmp_path):
    touch(
        tmp_path,
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0001.mp4",
        "YouTube-real/00000.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4",
    )
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"
    )
    entries = by_path(read_layout("celebdf", tmp_path))
    fake = entries["Celeb-synthesis/id0_id1_0000.mp4"]
    assert fake.label == "FAKE" and fake.group == entries["Celeb-real/id0_0000.mp4"].group == "celebdf:id0"
    assert fake.original == "Celeb-real/id0_0000.mp4"
    assert entries["Celeb-real/id1_0001.mp4"].group == "celebdf:id1"
    assert entries["YouTube-real/00000.mp4"].label == "REAL" and entries["YouTube-real/00000.mp4"].split == "test"
    assert fake.split == "test" and entries["Celeb-real/id0_0000.mp4"].split == "train"


def test_dfdc_layout_groups_fakes_with_their_original_across_parts(tmp_path):
    for part, metadata in {
        "dfdc_train_part_0": {
            "r.mp4": {"label": "REAL", "split": "train"},
            "f1.mp4": {"label": "FAKE", "split": "train", "original": "r.mp4"},
        },
        "dfdc_train_part_1": {
            "f2.mp4": {"label": "FAKE", "split": "train", "original": "r.mp4"},
            "q.mp4": {"label": "REAL", "split": "train"},
        },
    }.items():
        (tmp_path / part).mkdir()
        (tmp_path / part / "metadata.json").write_text(json.dumps(metadata))
    entries = by_path(read_layout("dfdc", tmp_path))
    assert entries["dfdc_train_part_1/f2.mp4"].group == entries["dfdc_train_part_0/r.mp4"].group == "dfdc:r"
    assert entries["dfdc_train_part_0/f1.mp4"].original == "r.mp4"
    assert entries["dfdc_train_part_1/q.mp4"].group == "dfdc:q"
    assert {e.label for e in entries.values()} == {"REAL", "FAKE"}


def test_shards_split_the_videos_disjointly(tmp_path):
    touch(tmp_path, *(f"real/{i}.mp4" for i in range(30)), *(f"fake/{i}.mp4" for i in range(30)))
    entries = read_layout("folder", tmp_path)
    parts = [{e.video_id for e in entries if layouts.in_shard(e, k, 3)} for k in (1, 2, 3)]
    assert sum(len(p) for p in parts) == 60 and set.union(*parts) == {e.video_id for e in entries}
    assert all(parts) and not (parts[0] & parts[1]) and not (parts[1] & parts[2])
    with pytest.raises(LayoutError, match="between 1 and N"):
        layouts.parse_shard("4/3")


# --- preprocessing --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_videos(tmp_path_factory) -> Path:
    """A face video, a faceless one, a too-short one and three files that are not video at all."""
    root = tmp_path_factory.mktemp("raw")
    (root / "real").mkdir()
    (root / "fake").mkdir()
    media.face_video(root / "real" / "face.mp4", frames=24)
    media.faceless_video(root / "fake" / "faceless.mp4", frames=24)
    media.face_video(root / "fake" / "short.mp4", frames=5)
    (root / "fake" / "broken.mp4").write_text("not a video at all")
    (root / "fake" / "page.mp4").write_text("<!doctype html><html><body>404</body></html>")
    (root / "real" / "zero.mp4").write_bytes(b"")
    return root


PREP_ARGS = ["--layout", "folder", "--sequence-length", "8", "--windows", "2", "--image-size", "64", "--no-progress"]


def test_preprocess_writes_clips_reports_bad_videos_and_resumes(raw_videos, tmp_path):
    out = tmp_path / "out"
    first = run("preprocess_videos", raw_videos, "--output", out, *PREP_ARGS)
    manifest = load_manifest(out / "manifest.json")
    status = {video.video: video for video in manifest.videos}
    face = status["real/face.mp4"]
    assert face.status == "ok" and len(face.clips) == 2 and face.frames_kept == 16 and face.fps == 25.0
    crops = np.load(manifest.clip_path(face.clips[0]))["crops"]
    assert crops.shape == (8, 64, 64, 3) and crops.dtype == np.uint8
    assert manifest.preprocessing.image_size == 64 and manifest.sequence_length == 8
    assert status["fake/faceless.mp4"].status == "no_face"
    assert status["fake/short.mp4"].status == "too_short" and "5 frames" in status["fake/short.mp4"].reason
    assert status["fake/broken.mp4"].status == "broken" and "text file" in status["fake/broken.mp4"].reason
    assert "HTML" in status["fake/page.mp4"].reason and "empty" in status["real/zero.mp4"].reason
    for name in ("fake/broken.mp4", "fake/page.mp4", "real/zero.mp4", "fake/faceless.mp4", "fake/short.mp4"):
        assert name in first, f"the final report names {name}"
    clip_file = manifest.clip_path(face.clips[0])
    stamp = clip_file.stat().st_mtime_ns
    second = run("preprocess_videos", raw_videos, "--output", out, *PREP_ARGS)
    assert "6 video(s) already done" in second and "0 processed now" in second
    assert clip_file.stat().st_mtime_ns == stamp, "finished videos are not redone"
    assert load_manifest(out / "manifest.json").to_dict()["videos"] == manifest.to_dict()["videos"]
    with pytest.raises(CommandError, match="other settings"):
        run("preprocess_videos", raw_videos, "--output", out, *[a if a != "64" else "96" for a in PREP_ARGS])


def test_preprocess_videos_prints_the_datasets_statistics_before_it_starts(tmp_path):
    touch(
        tmp_path,
        *(f"train/real/r{n}.mp4" for n in range(10)),
        "train/fake/Deepfakes/f0.mp4",
        *(f"test/real/t{n}.mp4" for n in range(2)),
        "test/fake/Deepfakes/d0.mp4",
        "test/fake/FaceSwap/s0.mp4",
    )
    report = run("preprocess_videos", tmp_path, "--output", tmp_path / "out", *PREP_ARGS)
    table = report[report.index("Videos per split and class, before preprocessing:") : report.index("Done:")]
    rows = [line.split() for line in table.splitlines()[1:]]
    assert rows[0] == ["split", "class", "videos", "share", "methods"]
    assert ["train", "REAL", "10", "91%"] in rows and ["train", "FAKE", "1", "9%", "Deepfakes", "1"] in rows
    assert ["test", "REAL", "2", "50%"] in rows and [
        "test",
        "FAKE",
        "2",
        "50%",
        "Deepfakes",
        "1,",
        "FaceSwap",
        "1",
    ] in rows
    assert ["all", "15"] in rows
    assert "warning: FAKE is 1 of the 11 videos of the train split, under 10%" in table
    assert "test split" not in table
    assert "0 clip(s)" in report and "broken 15" in report, "the summary after the run keeps its clip counts"


def test_parallel_shards_merge_into_one_manifest(raw_videos, tmp_path):
    out = tmp_path / "shared"
    run("preprocess_videos", raw_videos, "--output", out, *PREP_ARGS, "--shard", "1/2", "--workers", "2")
    run("preprocess_videos", raw_videos, "--output", out, *PREP_ARGS, "--shard", "2/2")
    one, two = load_manifest(out / "manifest-shard-1-of-2.json"), load_manifest(out / "manifest-shard-2-of-2.json")
    assert len(one.videos) >= 2 and len(two.videos) >= 2, "both shards have work (the first ran in two processes)"
    assert not {v.video_id for v in one.videos} & {v.video_id for v in two.videos}
    merged_path = tmp_path / "merged" / "manifest.json"
    run("merge_manifests", merged_path, out)
    merged = load_manifest(merged_path)
    assert len(merged.videos) == 6
    face = next(v for v in merged.videos if v.video == "real/face.mp4")
    assert np.load(merged.clip_path(face.clips[0]))["crops"].shape == (8, 64, 64, 3), "clip paths still resolve"
    other = synthetic_manifest(tmp_path / "other", videos_per_label=1, clips_per_video=1)
    with pytest.raises(CommandError, match="different settings"):
        run("merge_manifests", tmp_path / "bad.json", merged_path, other)


def test_preprocessed_crops_are_exactly_what_the_app_feeds_the_network(one_face_video, tiny_checkpoint, tmp_path):
    (tmp_path / "data" / "real").mkdir(parents=True)
    os.symlink(one_face_video, tmp_path / "data" / "real" / "video.mp4")
    run(
        "preprocess_videos",
        tmp_path / "data",
        "--layout",
        "folder",
        "--output",
        tmp_path / "out",
        "--preprocessing-from",
        tiny_checkpoint,
        "--sequence-length",
        "8",
        "--windows",
        "6",
        "--no-progress",
    )
    manifest = load_manifest(tmp_path / "out" / "manifest.json")
    assert manifest.preprocessing == load_checkpoint(tiny_checkpoint).preprocessing
    result = analyze_video(one_face_video, load_detector_model(tiny_checkpoint, "cpu"), max_windows=6)
    (video,) = manifest.videos
    assert len(video.clips) == len(result.windows) == 6
    for clip, window in zip(video.clips, result.windows, strict=True):
        stored = np.load(manifest.clip_path(clip))
        assert np.array_equal(stored["crops"], window.tracks[0].crops), "identical pixels at training and inference"
        assert stored["boxes"].tolist() == window.tracks[0].boxes
        assert clip.start_frame == window.start_frame


def test_bad_input_is_a_one_line_error(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("preprocess_videos", tmp_path / "missing", "--layout", "folder", "--output", tmp_path / "o")
    with pytest.raises(CommandError, match="neither original_sequences"):
        run("preprocess_videos", tmp_path, "--layout", "ffpp", "--output", tmp_path / "o")
    with pytest.raises(CommandError, match="K/N"):
        run("preprocess_videos", tmp_path, "--layout", "folder", "--output", tmp_path / "o", "--shard", "x")
    with pytest.raises(CommandError, match="not a preprocess manifest"):
        (tmp_path / "m.json").write_text("{}")
        run("train_model", "--manifest", tmp_path / "m.json", "--output", tmp_path / "t", *TINY)
    with pytest.raises(CommandError, match="--activate needs --register"):
        run("train_model", "--manifest", tmp_path / "m.json", "--output", tmp_path / "t2", "--activate", *TINY)


def command_flags(app: str, name: str) -> dict:
    """The argparse actions of a management command, by destination."""
    from django.core.management import load_command_class

    parser = load_command_class(app, name).create_parser("manage.py", name)
    return {action.dest: action for action in parser._actions}


def test_train_model_flags_take_their_defaults_and_choices_from_train_config():
    from dataclasses import MISSING, fields

    from django.core.management import load_command_class

    from ml_app.detection.network import BACKBONE_NAMES
    from model_creation.management.commands.train_model import DEFAULTS
    from model_creation.training.config import BALANCE_CHOICES, DEVICE_CHOICES, TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    assert defaults | {"extra_train": []} == DEFAULTS, "a field with a default factory: its fresh value"
    assert TrainConfig(manifest="m", output="o").to_dict() == {**DEFAULTS, "manifest": "m", "output": "o"}
    flags = command_flags("model_creation", "train_model")
    assert flags["backbone"].choices == BACKBONE_NAMES and flags["balance"].choices == BALANCE_CHOICES
    assert flags["device"].choices == DEVICE_CHOICES
    for name in ("backbone", "num_layers", "dropout", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs"):
        value = DEFAULTS[name]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"default {shown}" in flags[name].help, name
    for name in ("patience", "balance", "val_fraction", "workers", "seed", "device", "pretrained"):
        assert f"default {DEFAULTS[name]}" in flags[name].help, name
    # Nothing given stays None, so that a resumed run can tell the flags the user changed from the defaults.
    parser = load_command_class("model_creation", "train_model").create_parser("manage.py", "train_model")
    parsed = vars(parser.parse_args(["--output", "out"]))
    assert all(parsed[name] is None for name in DEFAULTS if name in parsed)


def test_preprocess_videos_defaults_are_the_apps():
    from ml_app.detection.defaults import DEFAULT_MAX_WINDOWS
    from ml_app.detection.preprocessing import Preprocessing
    from model_creation.training.options import preprocessing_from_options

    assert preprocessing_from_options({}) == Preprocessing()
    assert preprocessing_from_options({"margin": 0.5, "detector_max_side": 0}) == Preprocessing(
        margin=0.5, detector=replace(Preprocessing().detector, max_side=None)
    )
    flags = command_flags("model_creation", "preprocess_videos")
    assert flags["windows"].default == DEFAULT_MAX_WINDOWS
    assert f"default {Preprocessing().image_size}" in flags["image_size"].help
    assert f"default {Preprocessing().detector.max_side}" in flags["detector_max_side"].help


def test_dataset_layouts_read_the_shared_video_extensions(tmp_path):
    from ml_app.detection.defaults import VIDEO_EXTENSIONS

    names = [f"real/clip_{extension}.{extension.upper()}" for extension in VIDEO_EXTENSIONS] + ["fake/notes.txt"]
    touch(tmp_path, *names, "fake/f.mp4")
    entries = read_layout("folder", tmp_path)
    assert sorted(e.relpath for e in entries if e.label == "REAL") == sorted(names[: len(VIDEO_EXTENSIONS)])
    assert [e.relpath for e in entries if e.label == "FAKE"] == ["fake/f.mp4"]


# --- metrics, splits, augmentation ----------------------------------------------------------------------------------


def test_metrics_match_a_hand_computed_case():
    labels = [0, 0, 1, 1, 1, 0]
    scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.6]
    result = metrics.binary_metrics(labels, scores)
    # Predicted FAKE: 0.8, 0.7 (right) and 0.6 (wrong); 0.35 is a missed fake.
    assert result["confusion"] == [[2, 1], [1, 2]]
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    # Of the 9 (fake, real) pairs the fake scores higher in 7: 0.35 beats only 0.1.
    assert result["auc"] == pytest.approx(7 / 9)
    # ROC: (0,1/3) (0,2/3) (1/3,2/3) ...: at threshold 0.6 both error rates are 1/3.
    assert result["eer"] == pytest.approx(1 / 3) and result["eer_threshold"] == pytest.approx(0.6)
    expected_loss = (
        -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8) + math.log(0.7) + math.log(0.4)) / 6
    )
    assert result["log_loss"] == pytest.approx(expected_loss) and result["log_loss"] == pytest.approx(
        0.527020, abs=1e-6
    )
    assert metrics.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5), "a tie counts half"
    assert metrics.equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])[0] == pytest.approx(0.0)
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.9])), "undefined with one class"
    rng = np.random.default_rng(3)
    y, s = rng.integers(0, 2, 200), rng.integers(0, 20, 200) / 20  # many ties
    pairs = [(a > b) + 0.5 * (a == b) for a in s[y == 1] for b in s[y == 0]]
    assert metrics.roc_auc(y, s) == pytest.approx(np.mean(pairs)), "equals the rank statistic"


def _item(video_id: str, label: str, window: int, person: int, track: int = 0) -> ClipItem:
    video = VideoRecord(video_id=video_id, video=video_id, source_path="", label=label, dataset="d", group=video_id)
    return ClipItem(
        video, ClipRecord(file="", window=window, start_frame=0, track=track, person=person, frames=8, filled=0)
    )


def test_video_score_is_the_most_suspicious_persons_mean_as_in_the_app():
    items = [
        _item("v", "FAKE", 0, 0, 0),
        _item("v", "FAKE", 0, 1, 1),
        _item("v", "FAKE", 1, 0),
        _item("w", "REAL", 0, 0),
    ]
    scores = [0.2, 0.9, 0.4, 0.1]
    windows = {key: score for key, _, score in level_scores(items, scores, "window")}
    assert windows == {"v/0": 0.9, "v/1": 0.4, "w/0": 0.1}, "a window is its most suspicious face"
    videos = {key: (label, score) for key, label, score in level_scores(items, scores, "video")}
    assert videos["v"] == (1, pytest.approx(0.9)), "person 0 averages 0.3, person 1 0.9: the video takes the max"
    assert videos["w"] == (0, pytest.approx(0.1))


def test_group_split_keeps_groups_whole_and_test_videos_out():
    videos = []
    for group in range(10):
        for label in ("REAL", "FAKE"):
            video = VideoRecord(
                video_id=f"{group}{label}",
                video="",
                source_path="",
                label=label,
                dataset="d",
                group=f"g{group}",
                split="test" if group == 9 else "",
            )
            video.clips = [ClipRecord("", 0, 0, 0, 0, 8, 0)]
            videos.append(video)
    result = assign_splits(videos, val_fraction=0.2, seed=1)
    sides = {}
    for video in videos:
        sides.setdefault(video.group, set()).add(result.split_of[video.video_id])
    assert all(len(found) == 1 for found in sides.values()) and not result.leaking_groups
    assert sides["g9"] == {"test"}
    val = [v for v in videos if result.split_of[v.video_id] == "val"]
    assert {v.label for v in val} == {"REAL", "FAKE"} and 2 <= len(val) <= 6
    videos[0].split = "val"  # a dataset's own split wins when it has a validation part
    assert assign_splits(videos).source == "manifest"


def test_augmentation_is_drawn_once_per_sequence():
    frame = media.portrait(64)
    sequence = np.stack([frame] * 5)
    settings = augment.AugmentSettings(flip=1.0, blur=1.0, jpeg=1.0)
    params = augment.sample_params(settings, np.random.default_rng(0))
    out = augment.apply_params(sequence, params)
    assert out.shape == sequence.shape and out.dtype == np.uint8
    assert all(np.array_equal(out[0], out[i]) for i in range(1, 5)), "every frame changed the same way"
    assert not np.array_equal(out[0], frame)
    assert np.abs(out[0].astype(int) - frame[:, ::-1].astype(int)).mean() < 40, "flipped, not scrambled"
    bgr = augment.apply_params(sequence[..., ::-1], params, "BGR")
    assert np.array_equal(bgr[..., ::-1], out), "BGR crops are augmented as the same picture"


# --- training -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips_manifest(tmp_path_factory) -> Path:
    return synthetic_manifest(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def trained(clips_manifest, tmp_path_factory) -> tuple[Path, str]:
    output = tmp_path_factory.mktemp("run") / "out"
    log = run(
        "train_model",
        "--manifest",
        clips_manifest,
        "--output",
        output,
        "--epochs",
        "2",
        "--seed",
        "0",
        "--no-augment",
        "--dropout",
        "0",
        "--name",
        "tiny_trained",
        *TINY,
    )
    return output, log


def test_tiny_training_learns_and_writes_a_complete_checkpoint(trained, clips_manifest):
    output, log = trained
    history = read_history(output)
    assert len(history) == 2
    assert float(history[1]["train_loss"]) < float(history[0]["train_loss"]) - 0.05, log
    checkpoint = load_checkpoint(output / "best.pt")
    manifest = load_manifest(clips_manifest)
    assert checkpoint.preprocessing == manifest.preprocessing and checkpoint.sequence_length == 6
    assert checkpoint.training["manifest_sha256"] == manifest.sha256 and not checkpoint.untrained
    assert checkpoint.architecture.backbone == "mobilenet_v2" and checkpoint.architecture.hidden_size == 16
    assert 0.0 <= checkpoint.metrics["auc"] <= 1.0 and "accuracy" in checkpoint.metrics and "eer" in checkpoint.metrics
    assert checkpoint.training["clips"]["train"] and checkpoint.training["clips"]["val"]
    assert load_checkpoint(output / "last.pt").training["epoch"] == 2
    for plot in ("curves.png", "roc_validation.png", "confusion_validation.png", "reliability_validation.png"):
        assert (output / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))
    # calibrated at the end on the validation split, with the data it was fitted on
    calibration = checkpoint.calibration
    assert calibration is not None and calibration.method == "platt", log
    assert calibration.fitted_on["split"] == "validation" and calibration.fitted_on["fitted_by"] == "train_model"
    fitted = calibration.fitted_on["scores"]
    assert len(fitted) == checkpoint.training["clips"]["val"]["REAL"] + checkpoint.training["clips"]["val"]["FAKE"]
    assert 0.5 <= calibration.thresholds.fake <= 1.0 and 0.0 <= calibration.thresholds.real <= 0.5
    assert "Calibration (platt) fitted on" in log
    assert json.loads((output / "summary.json").read_text())["calibration"]["method"] == "platt"
    state = torch.load(output / "train_state.pt", weights_only=True)
    assert state["epoch"] == 2 and "optimizer" in state and "rng" in state
    assert json.loads((output / "summary.json").read_text())["epochs_run"] == 2


@pytest.mark.django_db
def test_register_copies_the_checkpoint_where_the_app_finds_it(trained, settings, tmp_path):
    from ml_app.checkpoint_lookup import available_checkpoints
    from ml_app.models import Checkpoint
    from model_creation.registering import register_checkpoint

    from .conftest import small_checkpoint

    settings.MODELS_DIR = tmp_path / "models"
    output, _ = trained
    target, note = register_checkpoint(output / "best.pt", "tiny_trained")
    assert available_checkpoints()[6] == target
    assert "not in the site's registry" in note and "offers 10, 20" in note, "6-frame windows are CLI-only"
    with pytest.raises(CommandError, match="exists already"):
        register_checkpoint(output / "best.pt", "tiny_trained")
    ten = small_checkpoint(tmp_path / "ten.pt", sequence_length=10)
    copy, note = register_checkpoint(ten, "trained_ten", activate=True)
    entry = Checkpoint.objects.get(sequence_length=10)
    assert entry.source == "training" and entry.is_active and entry.file_path == copy and "not active" not in note


def test_resume_continues_from_the_saved_epoch(clips_manifest, tmp_path, monkeypatch):
    common = ["--manifest", clips_manifest, "--epochs", "2", "--seed", "3", "--no-tensorboard", *TINY]
    run("train_model", "--output", tmp_path / "straight", *common)
    import model_creation.training.trainer as trainer_module

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the machine goes away right after epoch 1 was saved

    monkeypatch.setattr(trainer_module, "plot_curves", crash)
    with pytest.raises(KeyboardInterrupt):
        run("train_model", "--output", tmp_path / "resumed", *common)
    monkeypatch.undo()
    assert torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(CommandError, match="already holds a training run"):
        run("train_model", "--output", tmp_path / "resumed", *common)
    with pytest.raises(CommandError, match="--backbone differ"):
        run("train_model", "--output", tmp_path / "resumed", "--resume", "--backbone", "resnext50_32x4d")
    log = run("train_model", "--output", tmp_path / "resumed", "--resume", "--no-progress")
    assert "Resumed after epoch 1" in log
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    for key, value in straight.state_dict.items():
        assert torch.allclose(value.float(), resumed.state_dict[key].float(), atol=1e-5), key
    rows = [read_history(tmp_path / name) for name in ("straight", "resumed")]
    assert [r["epoch"] for r in rows[1]] == ["1", "2"]
    assert float(rows[1][1]["train_loss"]) == pytest.approx(float(rows[0][1]["train_loss"]), rel=1e-4)


def test_distributed_training_with_two_cpu_processes(clips_manifest, tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "manage.py",
        "train_model",
        "--manifest",
        str(clips_manifest),
        "--output",
        str(tmp_path / "ddp"),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--no-tensorboard",
        *TINY,
    ]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "x 2 processes" in done.stdout and done.stdout.count("\nepoch 1:") == 1, "only rank 0 reports"
    checkpoint = load_checkpoint(tmp_path / "ddp" / "best.pt")
    assert checkpoint.training["world_size"] == 2 and checkpoint.training["epoch"] == 1


# --- evaluation and export ------------------------------------------------------------------------------------------


def test_evaluate_model_reports_every_level_and_refuses_other_preprocessing(
    trained, clips_manifest, tiny_checkpoint, tmp_path
):
    output, _ = trained
    log = run(
        "evaluate_model",
        output / "best.pt",
        "--manifest",
        clips_manifest,
        "--output",
        tmp_path / "eval",
        "--no-progress",
    )
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["manifest"]["split"] == "all" and "overall" in log
    assert "trained on this manifest" in log, "evaluating on the training data is pointed out"
    overall = report["overall"]
    assert overall["clip"]["n"] == 24 and overall["video"]["n"] == 12 and overall["video"]["fake"] == 6
    assert set(report["per_dataset"]) == {"synthetic"} and set(report["per_method"]) == {"swap"}
    with open(tmp_path / "eval" / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    labels = [int(row["label"] == "FAKE") for row in rows]
    scores = [float(row["fake_probability"]) for row in rows]
    assert overall["video"]["auc"] == pytest.approx(metrics.roc_auc(labels, scores), abs=1e-5)
    correct = sum((s >= 0.5) == bool(y) for y, s in zip(labels, scores, strict=True))
    assert overall["video"]["accuracy"] == pytest.approx(correct / len(rows))
    assert (tmp_path / "eval" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    # calibrated and raw figures side by side, three-way outcomes at the checkpoint's thresholds
    assert report["calibrated"] and report["thresholds"]["source"] == "checkpoint"
    assert set(report["raw_overall"]) == {"clip", "window", "video"} and "brier" in overall["video"]
    outcomes = report["outcomes"]
    assert sum(outcomes["REAL"].values()) == 6 and sum(outcomes["FAKE"].values()) == 6
    called = [row["called"] for row in rows]
    assert called.count("INCONCLUSIVE") == outcomes["REAL"]["INCONCLUSIVE"] + outcomes["FAKE"]["INCONCLUSIVE"]
    assert {"raw", "calibrated"} == set(report["reliability"]["video"])
    assert (tmp_path / "eval" / "reliability_video.png").read_bytes()[:4] == b"\x89PNG"
    assert "Raw -> calibrated (videos): Brier" in log
    with pytest.raises(CommandError, match="other preprocessing"):
        run("evaluate_model", tiny_checkpoint, "--manifest", clips_manifest, "--output", tmp_path / "e2")


def test_calibrate_model_refits_on_the_runs_own_validation_split(trained, clips_manifest, tmp_path):
    output, _ = trained
    trained_with = load_checkpoint(output / "best.pt").calibration
    log = run(
        "calibrate_model", output / "best.pt", "--method", "temperature", "--output", tmp_path / "t.pt", "--no-progress"
    )
    refit = load_checkpoint(tmp_path / "t.pt").calibration
    assert refit.method == "temperature" and refit.parameters["temperature"] > 0 and "Calibration (temperature)" in log
    assert refit.fitted_on["fitted_by"] == "manage.py calibrate_model"
    # the same validation clips as the training run used, scored the same way
    assert sorted(row[:4] for row in refit.fitted_on["scores"]) == sorted(
        row[:4] for row in trained_with.fitted_on["scores"]
    )
    assert {round(row[4], 4) for row in refit.fitted_on["scores"]} == {
        round(row[4], 4) for row in trained_with.fitted_on["scores"]
    }
    with pytest.raises(CommandError, match="no clips in split"):
        run("calibrate_model", output / "best.pt", "--split", "test", "--output", tmp_path / "x.pt")
    # the same videos preprocessed again (another file, the same clips): the split is rebuilt, and says so
    again = clips_manifest.parent / "again.json"
    again.write_text(json.dumps(json.loads(clips_manifest.read_text()), indent=4))
    run("calibrate_model", output / "best.pt", "--manifest", again, "--output", tmp_path / "z.pt", "--no-progress")
    assert "the run's split rebuilt" in load_checkpoint(tmp_path / "z.pt").calibration.fitted_on["note"]
    # other clips: refused
    data = json.loads(clips_manifest.read_text())
    data["videos"] = data["videos"][1:]
    other = clips_manifest.parent / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(CommandError, match="gives other clips"):
        run("calibrate_model", output / "best.pt", "--manifest", other, "--output", tmp_path / "y.pt")


def test_onnx_export_matches_pytorch_and_serves_the_predictor(tiny_checkpoint, one_face_video, tmp_path):
    import onnx
    import onnxruntime

    path = tmp_path / "tiny.onnx"
    log = run("export_onnx", tiny_checkpoint, "--output", path)
    assert "matches PyTorch" in log
    checkpoint = load_checkpoint(tiny_checkpoint)
    stored = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    settings = json.loads(stored["deepfake_checkpoint"])
    assert settings["preprocessing"] == checkpoint.preprocessing.to_dict() and settings["sequence_length"] == 8
    from ml_app.detection.checkpoints import build_model

    model = build_model(checkpoint)
    clips = torch.randn(3, 8, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = model(clips).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"clips": clips.numpy()})[0]
    assert np.abs(expected - got).max() < 1e-4
    with_torch = analyze_video(one_face_video, load_detector_model(tiny_checkpoint, "cpu"), max_windows=2)
    with_onnx = analyze_video(one_face_video, load_detector_model(path, "cpu"), max_windows=2)
    assert with_onnx.checkpoint["preprocessing"] == with_torch.checkpoint["preprocessing"]
    assert with_onnx.fake_probability == pytest.approx(with_torch.fake_probability, abs=1e-4)
    with pytest.raises(CommandError, match="exists"):
        run("export_onnx", tiny_checkpoint, "--output", path)
    bare = onnx.load(str(path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(NotACheckpoint, match="export_onnx"):
        load_detector_model(tmp_path / "bare.onnx", "cpu")


# --- with the shared data -------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_shared_clips_preprocess_and_train_from_imagenet_weights(tmp_path):
    samples = shared_path("samples", "videos")
    weights = shared_path("weights", "mobilenet_v2-b0353104.pth")
    rows = [
        "real/street_1080p.mp4,REAL",
        "real/hamilton_360p.mp4,REAL",
        "fake/ffpp_df_003_000.mp4,FAKE",
        "fake/demo_fake_720p.mp4,FAKE",
    ]
    (tmp_path / "labels.csv").write_text("file,label\n" + "\n".join(rows) + "\n")
    run(
        "preprocess_videos",
        tmp_path / "labels.csv",
        "--layout",
        "csv",
        "--videos-dir",
        samples,
        "--output",
        tmp_path / "out",
        "--sequence-length",
        "4",
        "--windows",
        "2",
        "--image-size",
        "64",
        "--workers",
        "2",
        "--no-progress",
    )
    manifest = load_manifest(tmp_path / "out" / "manifest.json")
    assert [video.status for video in manifest.videos] == ["ok"] * 4
    assert all(video.clips for video in manifest.videos)
    log = run(
        "train_model",
        "--manifest",
        manifest.path,
        "--output",
        tmp_path / "run",
        "--epochs",
        "1",
        "--val-fraction",
        "0.5",
        *TINY_MODEL,
        "--pretrained",
        weights,
        "--no-tensorboard",
    )
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint.training["backbone_init"] == str(weights), log


def test_evaluate_model_preprocesses_other_videos_with_the_checkpoints_settings(raw_videos, tiny_checkpoint, tmp_path):
    log = run(
        "evaluate_model",
        tiny_checkpoint,
        "--videos",
        raw_videos,
        "--layout",
        "folder",
        "--windows",
        "2",
        "--output",
        tmp_path / "eval",
        "--no-progress",
    )
    manifest = load_manifest(tmp_path / "eval" / "clips" / "manifest.json")
    assert manifest.preprocessing == load_checkpoint(tiny_checkpoint).preprocessing and manifest.sequence_length == 8
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["overall"]["video"]["n"] == 1 and report["overall"]["clip"]["n"] == 2
    assert report["overall"]["video"]["auc"] is None, "one class only: AUC is undefined, not made up"
    assert len(report["unscored_videos"]) == 5 and "5 video(s) had no face clip" in log
    assert [row["video"] for row in report["videos"]] == ["real/face.mp4"]
