"""``train_model --extra-train``: more training clips (face photos) from manifests of the same crops. They train,
self-blended fakes are made of their reals, and they never reach validation; a manifest of other crops, photos for a
sequence model and a repeated video are refused with the reason."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command

from ml_app.detection.preprocessing import Preprocessing
from model_creation.training.config import TrainConfig, TrainError
from model_creation.training.distributed import setup
from model_creation.training.loading import items_per_split, load_training_data
from model_creation.training.manifest import load_manifest

from .test_frame_models import photo_manifest
from .training_data import synthetic_manifest


def QUIET(message: str) -> None:
    """What a run says, unheard."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return synthetic_manifest(tmp_path_factory.mktemp("videos"), videos_per_label=4, clips_per_video=2, length=6)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Photos of the videos' crop size (64 px), normalised otherwise (which a run may differ in)."""
    return photo_manifest(tmp_path_factory.mktemp("photos"), per_label=5, size=64)


def _config(videos: Path, tmp_path: Path, *extra: Path, **settings) -> TrainConfig:
    values = {"frame_model": True, "backbone": "custom_cnn", "workers": 0, "augment": False, "val_fraction": 0.25}
    return TrainConfig(
        manifest=str(videos), output=str(tmp_path), extra_train=[str(path) for path in extra], **{**values, **settings}
    )


def test_extra_clips_train_are_self_blended_and_never_validate(videos, photos, tmp_path):
    data = load_training_data(_config(videos, tmp_path, photos, synthesize_fakes="sbi"), setup("cpu"), QUIET)
    photo_ids = {video.video_id for video in load_manifest(photos).videos}
    train = [item for item in data.train_set.items if item.video.dataset == "photos"]
    assert {item.video.video_id for item in train if not item.synthetic} == photo_ids
    blended = {item.video.video_id for item in train if item.synthetic == "sbi"}
    assert blended == {f"{v}#sbi" for v in photo_ids if v.startswith("photos-real")}, "a fake of each real photo"
    assert not [item for item in data.val_items if item.video.dataset == "photos"]
    assert {item.video.split for item in train} == {"train"}
    # the photo clips load from their own folder, one frame each, through the run's normalisation
    index = data.train_set.items.index(next(item for item in train if not item.synthetic))
    tensor, target, _ = data.train_set[index]
    assert tensor.shape == (1, 3, 64, 64) and data.train_set.items[index].video.label == ["REAL", "FAKE"][target]
    # the clip counts a checkpoint records include them; the fingerprint a resume checks covers them
    without = load_training_data(_config(videos, tmp_path), setup("cpu"), QUIET)
    assert data.counts["train"]["REAL"] == without.counts["train"]["REAL"] + 5
    assert data.counts["val"] == without.counts["val"]
    assert without.fingerprint == without.manifest.sha256 and data.fingerprint != without.fingerprint
    items, counts = items_per_split(_config(videos, tmp_path, photos), load_manifest(videos))
    assert counts == data.counts and len(items["train"]) == len(without.train_set.items) + 10


def test_extra_manifests_of_other_crops_photos_for_sequences_and_repeats_are_refused(videos, photos, tmp_path):
    small = photo_manifest(tmp_path / "small", per_label=2, size=32)
    with pytest.raises(TrainError, match=r"other settings .*image_size"):
        load_training_data(_config(videos, tmp_path, small), setup("cpu"), QUIET)
    with pytest.raises(TrainError, match=r"photos \(one frame each\); a 6-frame model"):
        load_training_data(_config(videos, tmp_path, photos, frame_model=False), setup("cpu"), QUIET)
    with pytest.raises(TrainError, match="repeats video 'photos-real0'"):
        load_training_data(_config(videos, tmp_path, photos, photos), setup("cpu"), QUIET)
    with pytest.raises(TrainError, match=r"--extra-train: .*does not exist"):
        load_training_data(_config(videos, tmp_path, tmp_path / "none.json"), setup("cpu"), QUIET)
    detector = photo_manifest(tmp_path / "detector", per_label=2, size=64)
    manifest = load_manifest(detector)
    manifest.preprocessing = Preprocessing.from_dict({**manifest.preprocessing.to_dict(), "margin": 0.5})
    manifest.save(detector)
    with pytest.raises(TrainError, match="margin"):
        load_training_data(_config(videos, tmp_path, detector), setup("cpu"), QUIET)


def test_train_model_records_the_extra_manifests_in_the_checkpoint_and_refuses_a_changed_one_on_resume(
    videos, tmp_path
):
    photos = photo_manifest(tmp_path / "photos", per_label=3, size=64)
    output = tmp_path / "run"
    args = ["--manifest", videos, "--output", output, "--extra-train", photos, "--frame-model"]
    args += ["--backbone", "custom_cnn", "--pretrained", "random", "--epochs", "1", "--workers", "0"]
    args += ["--no-progress", "--no-tensorboard", "--val-fraction", "0.25", "--batch-size", "8"]
    call_command("train_model", *map(str, args), stdout=StringIO())
    stored = torch.load(output / "best.pt", map_location="cpu", weights_only=True)
    assert stored["training"]["extra_train"] == [
        {"manifest": str(photos), "sha256": load_manifest(photos).sha256, "media": "images"}
    ]
    assert stored["training"]["datasets"] == ["photos", "synthetic"]
    assert stored["training"]["config"]["extra_train"] == [str(photos)]
    assert stored["training"]["clips"]["train"]["REAL"] == 3 + sum(
        len(v.clips) for v in load_manifest(videos).videos if v.label == "REAL"
    ) - stored["training"]["clips"]["val"].get("REAL", 0)
    # the photo manifest changes under the run: resuming it is refused, as for the main manifest
    manifest = load_manifest(photos)
    manifest.videos = manifest.videos[1:]
    manifest.save(photos)
    with pytest.raises(CommandError, match="--extra-train manifest changed"):
        call_command("train_model", *map(str, args), "--resume", stdout=StringIO())
    # another photo manifest is another setting
    args[args.index(str(photos)) if str(photos) in args else args.index(photos)] = tmp_path / "other.json"
    with pytest.raises(CommandError, match="--extra-train differ"):
        call_command("train_model", *map(str, args), "--resume", stdout=StringIO())
