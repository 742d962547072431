"""The default photo model: its recipe (a split fixed by file name), the rebuild command end to end on generated
photos, and the shipped file: small, a calibrated frame model in the default mapping, its card's figures its own."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from PIL import Image

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.defaults import FRAME_MODEL_LENGTH, SHIPPED_PHOTO_FILE
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.photo import analyze_image
from model_creation.training.photo_model import photo_rows, split_of

from . import media
from .conftest import REPO, shared_path


def fake_gan_faces(root: Path, count: int = 10) -> Path:
    """A tiny stand-in for the shared gan_faces folder: real = the astronaut's portrait, fake = the same portrait with
    a colour cast a network learns at once, each on its own textured background."""
    for label in ("real", "fake"):
        (root / "gan_faces" / label).mkdir(parents=True)
        for number in range(count):
            image = media.scene(256, 256, ((28 + number, 24, 200),), number).astype(np.int16)
            if label == "fake":
                image[..., 2] += 60
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / "gan_faces" / label / f"{number:05d}.jpg")
    return root


def test_the_split_is_fixed_by_name_order(tmp_path):
    rows = photo_rows(fake_gan_faces(tmp_path, count=10))
    by_label = {label: [row for row in rows if row.label == label] for label in ("REAL", "FAKE")}
    for group in by_label.values():
        assert [row.split for row in group] == [split_of(index) for index in range(10)]
        assert [Path(row.filename).name for row in group] == sorted(Path(row.filename).name for row in group)
        assert sum(row.split == "test" for row in group) == 2 and sum(row.split == "val" for row in group) == 2
    assert photo_rows(tmp_path) == rows, "the same photos in the same splits on every call"


def test_the_recipe_refuses_a_folder_that_is_not_the_shared_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no \.jpg photos"):
        photo_rows(tmp_path)


@pytest.mark.django_db
def test_build_photo_model_end_to_end(tmp_path, settings):
    data = fake_gan_faces(tmp_path / "data", count=10)
    out = StringIO()
    call_command(
        "build_photo_model",
        "--data",
        str(data),
        "--work",
        str(tmp_path / "work"),
        "--backbone",
        "custom_cnn",
        "--image-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--carry-over",
        "--install-dir",
        str(tmp_path / "models"),
        stdout=out,
    )
    printed = out.getvalue()
    installed = tmp_path / "models" / "default_photo_custom_cnn.pt"
    checkpoint = load_checkpoint(installed)
    assert checkpoint.architecture.is_frame_model and checkpoint.sequence_length == FRAME_MODEL_LENGTH
    assert checkpoint.preprocessing.image_size == 32 and checkpoint.calibration is not None
    test = json.loads((tmp_path / "work" / "build.json").read_text())["reports"]["test"]
    assert checkpoint.metrics["accuracy"] == test["overall"]["video"]["accuracy"]
    (tn, fp), (fn, tp) = test["overall"]["video"]["confusion"]
    assert (tn + fp, fn + tp) == (2, 2), "the two test photos per class, and only those"
    assert "| test | photo | 2 / 2 |" in printed and "Installed" in printed
    result = analyze_image(data / "gan_faces" / "fake" / "00000.jpg", load_detector_model(installed, "cpu"))
    assert result.windows[0].status == "scored" and result.verdict in ("REAL", "FAKE", "INCONCLUSIVE")


# --- the shipped photo model ----------------------------------------------------------------------------------------


def test_the_shipped_photo_model_is_small_calibrated_and_mapped():
    path = REPO / SHIPPED_PHOTO_FILE
    assert path.is_file(), f"{path} ships with the project (see models/README.md, 'The photo model')"
    assert path.stat().st_size <= 25 * 1024 * 1024
    checkpoint = load_checkpoint(path)
    assert checkpoint.architecture.is_frame_model and checkpoint.architecture.backbone == "efficientnet_lite0"
    assert checkpoint.preprocessing.mean == (0.5, 0.5, 0.5) and checkpoint.calibration is not None
    assert not checkpoint.untrained and checkpoint.metrics["test"]["video"]["auc"] > 0.9
    assert settings.DEFAULT_MODEL_MAPPING[FRAME_MODEL_LENGTH] == SHIPPED_PHOTO_FILE


def test_the_card_quotes_the_shipped_photo_model_own_test_figures():
    checkpoint = load_checkpoint(REPO / SHIPPED_PHOTO_FILE)
    card = (REPO / "models" / "README.md").read_text()
    section = card[card.index("## The photo model") :]
    test = checkpoint.metrics["test"]["video"]
    row = re.search(r"\| test \| photo \| (\d+) / (\d+) \| ([0-9.]+) \| ([0-9.]+) \|", section)
    assert row is not None, "the card has the test row of build_photo_model's table"
    assert float(row[3]) == pytest.approx(test["accuracy"], abs=5e-4)
    assert float(row[4]) == pytest.approx(test["auc"], abs=5e-4)
    assert "build_photo_model" in section


def test_the_shipped_photo_model_scores_a_held_out_gan_face_and_a_real_one():
    """On two held-out test photos (fixed by name), the shipped model calls the StyleGAN face more fake."""
    rows = [row for row in photo_rows(shared_path("gan_faces").parent) if row.split == "test"]
    loaded = load_detector_model(REPO / SHIPPED_PHOTO_FILE, "cpu")
    real = next(row for row in rows if row.label == "REAL")
    fake = next(row for row in rows if row.label == "FAKE")
    real_score = analyze_image(real.filename, loaded).fake_probability
    fake_score = analyze_image(fake.filename, loaded).fake_probability
    assert fake_score > real_score
