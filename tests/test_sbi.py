"""Self-blended fakes: the landmark mask, the blend, one set of parameters per sequence, and labels that follow."""

from __future__ import annotations

from dataclasses import replace
from io import StringIO

import numpy as np
import pytest
import torch
from django.core.management import call_command

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.faces import FaceRecognitionDetector
from ml_app.detection.preprocessing import DetectorSettings, Preprocessing, crop_face
from model_creation.training import sbi
from model_creation.training.dataset import SELF_BLENDED, ClipDataset, ClipItem, with_self_blended
from model_creation.training.evaluate import usable_items
from model_creation.training.manifest import load_manifest

from . import media
from .training_data import synthetic_manifest

PREP = Preprocessing(image_size=112, margin=0.25)
PLAIN = sbi.SbiParams(
    blend=1.0,
    scale=1.0,
    shift_x=0.0,
    shift_y=0.0,
    channel_shift=(40.0, -30.0, 20.0),
    brightness=1.0,
    contrast=1.0,
    filter="none",
    mask_grow=0.0,
    mask_soften=0.03,
    inner_mask=False,
)


@pytest.fixture(scope="module")
def face_crops() -> np.ndarray:
    """Eight consecutive 112 px crops of a real face, made the way the app makes them."""
    detector = FaceRecognitionDetector(DetectorSettings(model="hog"))
    crops = []
    for n in range(8):
        frame = media.scene(480, 360, [(140, 60, 200)], n)
        box = detector.detect(frame)[0].box
        crops.append(crop_face(frame, box, PREP))
    return np.stack(crops)


def test_landmarks_fall_on_the_face(face_crops):
    points = sbi.landmarks(face_crops[0], sbi.face_box_in_crop(112, PREP))
    assert points.shape == (68, 2)
    x0, y0, x1, y1 = sbi.face_box_in_crop(112, PREP)
    inside = (points[:, 0] > x0 - 10) & (points[:, 0] < x1 + 10) & (points[:, 1] > y0 - 10) & (points[:, 1] < y1 + 10)
    assert inside.mean() > 0.9
    left_eye, right_eye, mouth = points[36:42].mean(0), points[42:48].mean(0), points[48:68].mean(0)
    assert left_eye[0] < right_eye[0] and mouth[1] > max(left_eye[1], right_eye[1]), "eyes above the mouth"


def test_mask_covers_the_face_and_nothing_else(face_crops):
    points = sbi.sequence_landmarks(face_crops, PREP)
    mask = sbi.face_mask(points[0], (112, 112), PLAIN)
    assert mask.shape == (112, 112) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() == pytest.approx(1.0)
    centre = points[0].mean(axis=0).round().astype(int)
    assert mask[centre[1], centre[0]] > 0.95
    assert mask[:8, :8].max() == 0 and mask[-8:, -8:].max() == 0, "corners (background) are untouched"
    assert 0.15 < (mask > 0.5).mean() < 0.7
    inner = sbi.face_mask(points[0], (112, 112), replace(PLAIN, inner_mask=True))
    grown = sbi.face_mask(points[0], (112, 112), replace(PLAIN, mask_grow=0.08))
    assert (inner > 0.5).sum() < (mask > 0.5).sum() < (grown > 0.5).sum()


def test_blend_changes_the_face_and_keeps_the_background(face_crops):
    points = sbi.sequence_landmarks(face_crops, PREP)
    fake = sbi.self_blend(face_crops, PREP, PLAIN, points)
    assert fake.shape == face_crops.shape and fake.dtype == np.uint8
    mask = sbi.face_mask(points[0], (112, 112), PLAIN)
    outside, inside = mask == 0, mask > 0.9
    difference = np.abs(fake[0].astype(int) - face_crops[0].astype(int))
    assert difference[outside].max() == 0
    assert difference[inside].mean() > 15
    assert fake[0][inside][:, 0].mean() > face_crops[0][inside][:, 0].mean() + 20, "the red shift shows in the face"
    invisible = sbi.self_blend(face_crops, PREP, replace(PLAIN, blend=0.0), points)
    assert np.array_equal(invisible, face_crops)


def test_colour_order_is_respected(face_crops):
    bgr_prep = replace(PREP, colour_order="BGR")
    rgb_fake = sbi.self_blend(face_crops, PREP, PLAIN)
    bgr_fake = sbi.self_blend(np.ascontiguousarray(face_crops[..., ::-1]), bgr_prep, PLAIN)
    assert np.array_equal(bgr_fake[..., ::-1], rgb_fake)


def test_one_set_of_parameters_for_the_whole_sequence(face_crops):
    still = np.repeat(face_crops[:1], 5, axis=0)
    params = sbi.sample_params(sbi.SbiSettings(), np.random.default_rng(3))
    fake = sbi.self_blend(still, PREP, params)
    assert all(np.array_equal(fake[0], frame) for frame in fake[1:]), "identical frames stay identical: no flicker"
    other = sbi.self_blend(still, PREP, sbi.sample_params(sbi.SbiSettings(), np.random.default_rng(4)))
    assert not np.array_equal(fake[0], other[0]), "another sequence gets other parameters"


@pytest.fixture
def real_only_manifest(tmp_path):
    path = synthetic_manifest(tmp_path, videos_per_label=4, clips_per_video=2, length=6, size=64)
    manifest = load_manifest(path)
    manifest.videos = [video for video in manifest.videos if video.label == "REAL"]
    manifest.save(path)
    return path


def test_labels_follow_and_fakes_stay_with_their_source(real_only_manifest):
    manifest = load_manifest(real_only_manifest)
    items = usable_items(manifest.videos)
    mixed = with_self_blended(items)
    assert len(mixed) == 2 * len(items)
    fakes = [item for item in mixed if item.synthetic]
    assert all(item.video.label == "FAKE" and item.video.method == SELF_BLENDED for item in fakes)
    assert {item.video.video_id for item in fakes} == {f"{item.video.video_id}#sbi" for item in items}
    assert [(f.video.group, f.clip) for f in fakes] == [(i.video.group, i.clip) for i in items], "same group, clip"
    dataset = ClipDataset(manifest, mixed, 6)
    fake_index = manifest.preprocessing.fake_index
    assert [dataset.target(i) for i in range(len(mixed))] == [1 - fake_index] * len(items) + [fake_index] * len(items)
    real_crops, fake_crops = dataset.crops(0), dataset.crops(len(items))
    assert not np.array_equal(real_crops, fake_crops)
    assert np.array_equal(fake_crops, dataset.crops(len(items))), "without augmentation the fake is reproducible"
    labelled_fake = ClipItem(replace(items[0].video, label="FAKE"), items[0].clip)
    assert with_self_blended([labelled_fake]) == [labelled_fake], "no self-blend is made from a fake"


# a tiny, fast training configuration shared by the training tests below
TINY_RUN = ("--epochs", "1", "--backbone", "mobilenet_v2", "--hidden-size", "8", "--batch-size", "4")
TINY_RUN += ("--pretrained", "random", "--workers", "0", "--no-progress", "--no-tensorboard")


def test_training_on_real_videos_alone_with_self_blended_fakes(real_only_manifest, tmp_path):
    output = tmp_path / "run"
    out = StringIO()
    call_command(
        "train_model",
        *("--manifest", str(real_only_manifest), "--output", str(output), *TINY_RUN),
        *("--synthesize-fakes", "sbi", "--val-fraction", "0.25"),
        stdout=out,
    )
    assert "self-blended fakes" in out.getvalue()
    checkpoint = load_checkpoint(output / "best.pt")
    synthesized = checkpoint.training["self_blended_clips"]
    assert synthesized["train"] > 0 and synthesized["val"] > 0
    assert checkpoint.training["config"]["synthesize_fakes"] == "sbi"
    assert checkpoint.training["self_blending"]["blend"]
    assert torch.isfinite(torch.tensor(checkpoint.metrics["log_loss"]))


def test_without_self_blending_real_videos_alone_are_refused(real_only_manifest, tmp_path):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="both REAL and FAKE"):
        call_command(
            "train_model",
            *("--manifest", str(real_only_manifest), "--output", str(tmp_path / "run"), *TINY_RUN),
            stdout=StringIO(),
        )
