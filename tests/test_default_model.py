"""The default model: recipe 1 (data, fixed test split) and its rebuild command end to end on a tiny generated tree
(``--recipe 1``: the first default model stays reproducible), and the shipped checkpoints themselves (recipe 2's,
``tests/test_default_recipe.py``)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
import torch
import torchvision
from django.conf import settings
from django.core.management import call_command

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.model_mapping import summarize_checkpoint
from model_creation.default_steps import DETECTOR as RECIPE_DETECTOR
from model_creation.training.default_model import DETECTORS, LENGTHS, NAME, dataset_rows, shipped_file

from . import media
from .conftest import REPO, shared_path


def fake_shared_tree(root: Path) -> Path:
    """The shape of ../shared/data, with short generated videos."""
    for folder in ("real_clips", "samples/videos/real", "samples/videos/fake", "weights"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for number in range(4):
        media.face_video(root / "real_clips" / f"clip{number}.mp4", frames=44, faces=((100 + 20 * number, 60, 200),))
    media.face_video(root / "samples/videos/real/street.mp4", frames=44)
    media.face_video(root / "samples/videos/fake/ffpp_df_003_000.mp4", frames=44, faces=((120, 40, 220),))
    media.faceless_video(root / "samples/videos/fake/dfdc_abofeumbvv.mp4", frames=44)
    weights = root / "weights" / "mobilenet_v2-b0353104.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), weights)
    return root


def test_recipe_holds_out_a_fixed_test_split(tmp_path):
    rows = {Path(row.filename).name: row for row in dataset_rows(fake_shared_tree(tmp_path / "data"))}
    assert rows["clip0.mp4"].split == "test" and rows["clip1.mp4"].split == "train", "every fourth real clip"
    assert rows["ffpp_df_003_000.mp4"].split == "test" and rows["ffpp_df_003_000.mp4"].label == "FAKE"
    assert rows["street.mp4"].label == "REAL" and rows["street.mp4"].split == "train"
    assert len({row.group for row in rows.values()}) == len(rows), "each video is its own group"
    again = {Path(row.filename).name: row.split for row in dataset_rows(tmp_path / "data")}
    assert again == {name: row.split for name, row in rows.items()}, "the same split on every rebuild"


def test_recipe_refuses_a_folder_that_is_not_the_shared_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared data"):
        dataset_rows(tmp_path)


@pytest.mark.django_db
def test_rebuild_command_end_to_end(tmp_path):
    data = fake_shared_tree(tmp_path / "data")
    out = StringIO()

    def build(length: int) -> None:
        call_command(
            "build_default_model",
            "--recipe",
            "1",
            *("--data", str(data), "--work", str(tmp_path / "work"), "--lengths", str(length), "--epochs", "1"),
            *("--windows", "2", "--hidden-size", "8", "--batch-size", "4", "--workers", "0"),
            *("--install-dir", str(tmp_path / "models")),
            stdout=out,
            stderr=StringIO(),
        )

    build(10)
    installed = tmp_path / "models" / f"{NAME.format(length=10)}.pt"
    checkpoint = load_checkpoint(installed)
    assert checkpoint.sequence_length == 10 and checkpoint.architecture.backbone == "mobilenet_v2"
    assert checkpoint.training["config"]["synthesize_fakes"] == "sbi" and not checkpoint.untrained
    assert torch.load(installed, weights_only=True)["weights_dtype"] == "float16"
    assert "accuracy" in checkpoint.metrics and "held-out test split" in checkpoint.metrics["accuracy_source"]
    assert checkpoint.metrics["test"]["video"]["n"] > 0
    table = (tmp_path / "work" / "card_table.md").read_text()
    assert table in out.getvalue() and "| 10 | face_recognition |" in table
    # the recipe's detector for that length (DETECTORS), stored in the checkpoint like every input setting
    assert checkpoint.preprocessing.detector.backend == DETECTORS[10] == "face_recognition"
    # calibrated at the end of training, carried into the installed file, reported in the card's second table
    assert checkpoint.calibration is not None and checkpoint.calibration.fitted_on["fitted_by"] == "train_model"
    assert "REAL at or below" in table and f"| 10 | {checkpoint.calibration.method} |" in table

    build(12)  # rebuilding one length keeps the others' figures in the report
    report = json.loads((tmp_path / "work" / "build.json").read_text())
    assert sorted(report["models"]) == ["10", "12"] and report["videos"] == 7
    assert sorted(report["preprocessing"]) == ["centerface", "face_recognition"]  # one set of clips per detector
    assert report["models"]["12"]["detector"] == "centerface"
    twelve = load_checkpoint(tmp_path / "models" / f"{NAME.format(length=12)}.pt")
    assert twelve.preprocessing.detector.backend == "centerface"
    assert report["models"]["10"]["train_seconds"] > 0 and report["models"]["12"]["epochs_run"] == 1
    table = (tmp_path / "work" / "card_table.md").read_text()
    assert "| 10 |" in table and "| 12 |" in table


# --- the shipped checkpoints -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", LENGTHS)
def test_shipped_checkpoint_is_small_valid_and_mapped(length):
    path = REPO / shipped_file(length)
    assert path.is_file(), f"{path} ships with the project (see models/README.md)"
    assert path.stat().st_size <= 20 * 1024 * 1024
    summary = summarize_checkpoint(path)
    assert summary.sequence_length == length and summary.backbone == "mobilenet_v2" and not summary.untrained
    assert settings.DEFAULT_MODEL_MAPPING[length] == f"models/{path.name}"
    card = (REPO / "models" / "README.md").read_text()
    assert path.name in card and "build_default_model" in card


@pytest.mark.parametrize("length", LENGTHS)
def test_default_checkpoint_tells_a_self_blended_fake_from_its_real_source(one_face_video, length):
    """On a face it has never seen, each shipped model scores self-blended copies as more fake than the face itself.
    Both scores are the network's own (raw softmax of the same crops): a track's probability is calibrated, which
    would compare two different scales."""
    import numpy as np

    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.prediction import analyze_video
    from ml_app.detection.preprocessing import crops_to_tensor
    from model_creation.training import sbi

    loaded = load_detector_model(REPO / shipped_file(length), "cpu")
    real = analyze_video(one_face_video, loaded, max_windows=1).windows[0].tracks[0]
    prep = loaded.checkpoint.preprocessing

    def fake_score(crops) -> float:
        with torch.inference_mode():
            logits = loaded.model(crops_to_tensor(crops[None], prep))
        return float(torch.softmax(logits, 1)[0, prep.fake_index])

    rng_params = (sbi.sample_params(sbi.SbiSettings(), np.random.default_rng(seed)) for seed in range(4))
    blended = [fake_score(sbi.self_blend(real.crops, prep, params)) for params in rng_params]
    assert np.mean(blended) > fake_score(real.crops)


def test_shared_sample_clip_is_analysed_with_the_default_model():
    """The site's default (10 frames) finds faces with CenterFace: the small, dim face that HOG never found in
    dfdc_abofeumbvv is followed through every window, and this labelled fake is not called REAL."""
    clip = shared_path("samples", "videos", "fake", "dfdc_abofeumbvv.mp4")
    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.prediction import analyze_video

    loaded = load_detector_model(REPO / settings.DEFAULT_MODEL_MAPPING[settings.DEFAULT_SEQUENCE_LENGTH], "cpu")
    assert loaded.checkpoint.preprocessing.detector.backend == RECIPE_DETECTOR
    result = analyze_video(clip, loaded)
    assert result.verdict != "REAL" and not result.checkpoint["untrained"]
    assert len(result.windows) >= 6 and all(w.status == "scored" for w in result.windows)
