"""Issue 28, part 1: real faces at scale. The recipe's photo sources (FFHQ, CelebA with identities, UTKFace) keep a
person on one side of a split; photo faces are degraded like video faces, both classes alike; each epoch draws a
fresh sample of them; decoded crops are cached and read back exactly."""

from __future__ import annotations

import csv
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from ml_app.detection.preprocessing import Preprocessing
from model_creation.training import crop_cache, degrade
from model_creation.training.config import TrainConfig
from model_creation.training.dataset import ClipDataset
from model_creation.training.default_photos import (
    VALIDATION_SHARE,
    photo_counts,
    photo_rows,
    photo_sources,
    source_of_photo,
    split_of_group,
)
from model_creation.training.distributed import setup
from model_creation.training.extract import load_clip
from model_creation.training.loading import load_training_data
from model_creation.training.manifest import load_manifest
from model_creation.training.photo_draw import PhotoDrawSampler, photo_groups

from . import media
from .test_frame_models import photo_manifest
from .training_data import synthetic_manifest


def QUIET(message: str) -> None:
    """What a run says, unheard."""


# --- the recipe's photo sources -------------------------------------------------------------------------------------


@pytest.fixture
def photo_tree(tmp_path) -> Path:
    """gan_faces/real (3 FFHQ), real_faces/celeba (6 photos of 3 people, one unlisted) and real_faces/utkface (2)."""
    for folder, names in (
        ("gan_faces/real", ["00000.jpg", "00001.jpg", "00002.jpg"]),
        ("real_faces/celeba", [f"{n:06d}.jpg" for n in range(1, 7)]),
        ("real_faces/utkface", ["25_0_0_1.jpg", "40_1_2_2.jpg"]),
    ):
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).write_bytes(b"")
    with open(tmp_path / "real_faces/celeba/identities.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "identity"])
        for number, identity in ((1, 7), (2, 7), (3, 9), (4, 9), (5, 11)):
            writer.writerow([f"{number:06d}.jpg", identity])
    return tmp_path


def test_every_source_is_read_with_one_group_per_person(photo_tree):
    rows = photo_rows(photo_tree)
    assert len(rows) == 11 and {row.label for row in rows} == {"REAL"}
    groups = {Path(row.filename).name: row.group for row in rows if "celeba" in row.filename}
    assert groups["000001.jpg"] == groups["000002.jpg"] == "celeba:id7"
    assert groups["000003.jpg"] == groups["000004.jpg"] == "celeba:id9" != groups["000005.jpg"]
    assert groups["000006.jpg"] == "celeba:000006", "a photo the identities file does not list is its own person"
    counts = photo_counts(rows)
    assert counts["celeba"]["people"] == 4 and counts["ffhq"]["people"] == 3 and counts["utkface"]["people"] == 2
    assert [source.name for source in photo_sources(photo_tree)] == ["ffhq", "celeba", "utkface"]
    assert source_of_photo("photos:celeba:id7") == "celeba"


def test_a_person_is_never_on_both_sides_of_the_split(photo_tree):
    rows = photo_rows(photo_tree)
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row.group, set()).add(row.split)
    assert all(len(found) == 1 for found in sides.values())
    # the split is the group's, by a stable hash: about one group in VALIDATION_SHARE validates
    names = [f"celeba:id{number}" for number in range(4000)]
    share = sum(split_of_group(name) == "val" for name in names) / len(names)
    assert abs(share - 1 / VALIDATION_SHARE) < 0.015
    assert [split_of_group(name) for name in names[:50]] == [split_of_group(name) for name in names[:50]]


def test_a_count_takes_photos_evenly_over_the_sources_and_more_than_there_are_is_refused(photo_tree):
    rows = photo_rows(photo_tree, 4)
    assert len(rows) == 4 and {source_of_photo(row.group) for row in rows} == {"ffhq", "celeba", "utkface"}
    with pytest.raises(FileNotFoundError, match="hold 11 photos; the recipe takes 12"):
        photo_rows(photo_tree, 12)


def test_the_photos_identities_in_the_shared_data_stay_on_one_side(shared_data):
    rows = photo_rows(shared_data)
    counts = photo_counts(rows)
    assert counts["celeba"]["people"] == 3570 and counts["utkface"]["people"] == 10000
    sides: dict[str, set[str]] = {}
    for row in rows:
        sides.setdefault(row.group, set()).add(row.split)
    assert all(len(found) == 1 for found in sides.values())


@pytest.fixture
def shared_data():
    from .conftest import shared_path

    return shared_path("real_faces").parent


# --- degradation ----------------------------------------------------------------------------------------------------


def _sharpness(crops: np.ndarray) -> float:
    import cv2

    grey = cv2.cvtColor(crops[0], cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_a_degraded_face_loses_detail_keeps_its_shape_and_is_repeatable():
    face = media.portrait(112)[np.newaxis]
    settings = degrade.DegradeSettings(face_sizes=(30.0,), blur=0.0, noise=0.0, crf=(40, 40))
    params = degrade.sample_params(settings, 112, np.random.default_rng(0))
    assert params.scale == pytest.approx(45 / 112) and params.crf == 40
    out = degrade.degrade(face, params)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert _sharpness(out) < 0.5 * _sharpness(face), "a small, compressed face has lost fine detail"
    assert np.array_equal(out, degrade.degrade(face, params))
    large = degrade.DegradeSettings(face_sizes=(400.0,), blur=0.0, noise=0.0)
    assert degrade.sample_params(large, 112, np.random.default_rng(0)).scale == large.max_scale


def test_the_face_sizes_come_from_the_videos_boxes():
    boxes = [np.array([[0, 0, 100, 120]] * 3), np.array([[10, 10, 60, 70], [10, 10, 70, 70]]), np.zeros((0, 4))]
    assert degrade.video_face_sizes(boxes) == (55.0, 100.0)
    assert degrade.video_face_sizes([]) == degrade.DEFAULT_FACE_SIZES
    quantiles = degrade.DegradeSettings(face_sizes=(10.0, 20.0, 30.0)).to_dict()["face_sizes"]["quantiles"]
    assert quantiles["0.5"] == 20.0


@pytest.fixture(scope="module")
def videos_and_photos(tmp_path_factory) -> tuple[Path, Path]:
    videos = synthetic_manifest(tmp_path_factory.mktemp("videos"), videos_per_label=3, clips_per_video=2, length=6)
    photos = photo_manifest(tmp_path_factory.mktemp("photos"), per_label=12, size=64)
    return videos, photos


def _config(videos: Path, photos: Path, tmp_path: Path, **settings) -> TrainConfig:
    values = {
        "frame_model": True,
        "backbone": "custom_cnn",
        "workers": 0,
        "augment": False,
        "val_fraction": 0.3,
        "synthesize_fakes": "sbi",
    }
    return TrainConfig(manifest=str(videos), output=str(tmp_path), extra_train=[str(photos)], **{**values, **settings})


def test_photo_faces_of_both_classes_are_degraded_alike_and_video_faces_are_not(videos_and_photos, tmp_path):
    videos, photos = videos_and_photos
    data = load_training_data(_config(videos, photos, tmp_path, cache_crops=False), setup("cpu"), QUIET)
    dataset = data.train_set
    assert dataset.degrade is not None and dataset.degrade.face_sizes, "sized from the training videos' boxes"
    plain = ClipDataset(dataset.manifest, dataset.items, 1, None, 0, dataset.preprocessing, True)
    changed: dict[tuple[bool, str], list[bool]] = {}
    for index, item in enumerate(dataset.items):
        differs = not np.array_equal(dataset.crops(index), plain.crops(index))
        changed.setdefault((item.photo, item.video.label), []).append(differs)
    assert all(changed[(True, "REAL")]) and all(changed[(True, "FAKE")]), "every photo face, real or blended"
    assert not any(changed[(False, "REAL")]), "a video face keeps its own compression"
    # one distribution for both classes: the draws of real photo faces and of their blended twins look alike
    rng_draws = {
        label: [
            degrade.sample_params(dataset.degrade, 64, np.random.default_rng([0, 0, index, 1]))
            for index, item in enumerate(dataset.items)
            if item.photo and item.video.label == label
        ]
        for label in ("REAL", "FAKE")
    }
    for label in ("REAL", "FAKE"):
        assert rng_draws[label], label
    means = {label: np.mean([draw.crf for draw in draws]) for label, draws in rng_draws.items()}
    assert abs(means["REAL"] - means["FAKE"]) < 6
    off = load_training_data(_config(videos, photos, tmp_path, degrade_photos=False), setup("cpu"), QUIET)
    assert off.train_set.degrade is None


# --- a fresh draw of photos each epoch ------------------------------------------------------------------------------


def test_each_epoch_draws_fresh_photo_faces_with_their_twins(videos_and_photos, tmp_path):
    videos, photos = videos_and_photos
    data = load_training_data(_config(videos, photos, tmp_path, photos_per_epoch=3), setup("cpu"), QUIET)
    sampler = data.train_sampler
    assert isinstance(sampler, PhotoDrawSampler)
    items = data.train_set.items
    always, groups = photo_groups(items)
    epochs = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        drawn = list(sampler)
        assert set(always) <= set(drawn), "every video clip, every epoch"

        def face_of(index: int) -> str:
            return items[index].video.video_id.removesuffix("#sbi") + items[index].clip.file

        photo_faces = {face_of(index) for index in drawn if items[index].photo}
        assert len(photo_faces) == 3
        for face in photo_faces:  # a real face comes with its blended twin (a fake photo alone)
            indices = sorted({index for index in drawn if face_of(index) == face})  # padding may repeat one
            labels = sorted(items[index].video.label for index in indices)
            assert labels in (["FAKE", "REAL"], ["FAKE"])
            assert labels == ["FAKE"] or {items[index].synthetic for index in indices} == {"", "sbi"}
        epochs.append(photo_faces)
    assert len(set(map(frozenset, epochs))) > 1, "the draw changes with the epoch"
    assert sampler.faces_seen(4) == len(set().union(*epochs)) > 3
    sampler.set_epoch(1)
    assert list(sampler) == list(sampler), "the same epoch draws the same"
    # two ranks split one draw between them
    ranks = [PhotoDrawSampler(always, groups, 3, 0, rank, 2) for rank in range(2)]
    halves = [list(rank) for rank in ranks]
    assert len(halves[0]) == len(halves[1]) == ranks[0].per_rank
    # the loss's class weights follow what an epoch holds
    assert data.class_weights.shape == (2,) and float(data.class_weights.min()) > 0


# --- the crop cache -------------------------------------------------------------------------------------------------


def test_the_crop_cache_serves_exactly_the_stored_crops_and_ignores_a_changed_file(tmp_path):
    folder = Path(synthetic_manifest(tmp_path / "clips", videos_per_label=2, clips_per_video=2, length=5)).parent
    files = crop_cache.clip_files(folder)
    assert crop_cache.build_crop_cache(folder) == folder / crop_cache.CACHE_DIR
    for path in files:
        stored = load_clip(path)
        assert crop_cache.clip_length(path) == len(stored)
        assert np.array_equal(crop_cache.read_frames(path), stored)
        assert np.array_equal(crop_cache.read_frames(path, 2, 2), stored[2:4])
    index_mtime = (folder / crop_cache.CACHE_DIR / crop_cache.INDEX).stat().st_mtime_ns
    assert crop_cache.build_crop_cache(folder) == folder / crop_cache.CACHE_DIR
    assert (folder / crop_cache.CACHE_DIR / crop_cache.INDEX).stat().st_mtime_ns == index_mtime, "up to date: kept"
    changed = files[0]
    new = np.full((5, 64, 64, 3), 7, np.uint8)
    np.savez_compressed(changed, crops=new)
    os.utime(changed, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    assert np.array_equal(crop_cache.read_frames(changed), new), "a file changed since is read from the file"
    assert crop_cache.build_crop_cache(folder) is not None
    crop_cache._OPEN.clear()
    assert np.array_equal(crop_cache.read_frames(changed), new)


def _build(folder: str) -> str:
    return str(crop_cache.build_crop_cache(folder))


def test_processes_building_one_cache_at_once_agree(tmp_path):
    folder = Path(synthetic_manifest(tmp_path / "clips", videos_per_label=2, clips_per_video=2, length=5)).parent
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_build, [str(folder)] * 3)
    assert set(results) == {str(folder / crop_cache.CACHE_DIR)}
    for path in crop_cache.clip_files(folder):
        assert np.array_equal(crop_cache.read_frames(path), load_clip(path))


def test_a_training_run_caches_its_clips_and_trains_from_the_cache(videos_and_photos, tmp_path):
    videos, photos = videos_and_photos
    load_training_data(_config(videos, photos, tmp_path), setup("cpu"), QUIET)
    for manifest in (videos, photos):
        assert (manifest.parent / crop_cache.CACHE_DIR / crop_cache.ARRAY).is_file()


def test_tight_crops_are_searched_again_with_a_border(tmp_path):
    """A face that fills the whole photo leaves the detector no context; with --pad-if-no-face it is found."""
    from ml_app.detection.faces import build_detector
    from ml_app.detection.images import read_image
    from ml_app.detection.photo import find_photo_faces
    from model_creation.training.extract_images import ImageExtractor, ImageSettings

    from .conftest import shared_path

    photo, _ = read_image(shared_path("real_faces", "utkface", "100_0_0_20170112213500903.jpg"), 10**8)
    tight = np.ascontiguousarray(photo[50:150, 50:150])  # the UTKFace crop, tighter still: 100 x 100 px of face
    prep = Preprocessing(image_size=64)
    assert not find_photo_faces(tight, build_detector(prep.detector), prep), "a crop the detector misses as it is"
    plain = ImageExtractor(ImageSettings(prep))
    padded = ImageExtractor(ImageSettings(prep, pad_if_no_face=0.25))
    assert plain._faces(tight) == ([], 0)
    faces, border = padded._faces(tight)
    assert len(faces) == 1 and border == 25
    crop, box = faces[0]
    assert crop.shape == (64, 64, 3) and box.x0 < 50 and box.x1 > 50, "the box is in the photo's own pixels"
    assert ImageSettings(prep, pad_if_no_face=0.25).to_dict()["pad_if_no_face"] == 0.25
    assert "pad_if_no_face" not in ImageSettings(prep).to_dict(), "folders made before it still resume"


def test_a_pack_carries_the_middle_frames_and_faces_and_unpacks_into_folders_that_train(videos_and_photos, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    videos, photos = videos_and_photos
    pack = tmp_path / "pack.tar"
    out = StringIO()
    call_command(
        "pack_crops", "--clips", videos.parent, "--photos", photos.parent, "--frames", "4", "--output", pack, stdout=out
    )
    assert "Packed 48 frames of clips, 24 frames of photos" in out.getvalue(), "12 clips x 4 frames, 24 photos"
    call_command("pack_crops", "--unpack", pack, "--output", tmp_path / "unpacked", stdout=StringIO())
    clips = load_manifest(tmp_path / "unpacked" / "clips" / "manifest.json")
    original = load_manifest(videos)
    assert clips.sequence_length == 4 and len(clips.videos) == len(original.videos)
    first = original.clips()[0][1]
    stored, unpacked = load_clip(original.clip_path(first))[1:5], load_clip(clips.clip_path(clips.clips()[0][1]))
    assert unpacked.shape == stored.shape and np.abs(unpacked.astype(int) - stored).mean() < 8, "JPEG (noisy clips)"
    with np.load(clips.clip_path(clips.clips()[0][1])) as data:
        assert data["boxes"].shape == (4, 4) and data["boxes"].any(), "the face boxes travel too"
    unpacked_root = tmp_path / "unpacked"
    config = _config(unpacked_root / "clips" / "manifest.json", unpacked_root / "photos" / "manifest.json", tmp_path)
    data = load_training_data(config, setup("cpu"), QUIET)
    assert data.train_set.degrade is not None and len(data.train_set) > 24
    with pytest.raises(CommandError, match="Name --clips and/or --photos"):
        call_command("pack_crops", "--output", pack, stdout=StringIO())
