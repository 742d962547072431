"""Issue 28, part 2: calibration and thresholds on every video, out of fold, with a stated 50/50 prior; the decided
share and the wrong among the decided; runs that keep their last epoch and runs that validate nothing; a frame model
that scores windows of several frames."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from ml_app.detection.checkpoints import load_checkpoint, new_checkpoint, save_checkpoint
from ml_app.detection.errors import NotACheckpoint
from ml_app.detection.network import DeepfakeDetector, ModelConfig
from ml_app.detection.preprocessing import Preprocessing
from model_creation.training.dataset import ClipItem
from model_creation.training.evaluate import decision_figures
from model_creation.training.manifest import ClipRecord, VideoRecord
from model_creation.training.out_of_fold import (
    MEANING,
    balanced_log_loss,
    calibrate_out_of_fold,
    is_self_blended,
    score_files,
    scores_of,
)
from model_creation.training.validation_scores import read_validation_scores, write_validation_scores

from .training_data import synthetic_manifest


def _videos(reals: int, fakes: int, blended: int, rng: np.random.Generator) -> tuple[list[ClipItem], np.ndarray]:
    """Clips of videos with raw scores: reals lower, real manipulations higher but overlapping them, self-blended
    copies highest; four windows a video, one person."""
    items, scores = [], []
    kinds = [("REAL", "real", 0.35)] * reals + [("FAKE", "ffpp-deepfakes", 0.5)] * fakes
    kinds += [("FAKE", "self-blended", 0.9)] * blended
    for number, (label, method, centre) in enumerate(kinds):
        suffix = "#sbi" if method == "self-blended" else ""
        video = VideoRecord(f"v{number}{suffix}", "", "", label, "d", f"g{number}", method=method)
        for window in range(4):
            items.append(ClipItem(video, ClipRecord("", window, 0, 0, 0, 0, 0)))
            scores.append(float(np.clip(rng.normal(centre + 0.1 * rng.normal(), 0.15), 0.01, 0.99)))
    return items, np.array(scores)


def test_the_calibration_is_fitted_on_videos_at_a_50_50_prior_and_leaves_self_blended_copies_out():
    rng = np.random.default_rng(0)
    items, raw = _videos(reals=40, fakes=10, blended=30, rng=rng)
    calibration = calibrate_out_of_fold(items, raw)
    on = calibration.fitted_on
    assert on["videos"] == {"REAL": 40, "FAKE": 10} and on["excluded"] == {"self-blended videos": 30}
    assert on["prior"] == {"fake": 0.5, "meaning": MEANING} and on["level"] == "video"
    assert on["threshold_rule"]["fakes"] == "real manipulations only" and on["methods"] == {"ffpp-deepfakes": 10}
    # a 50/50 prior: averaged over the classes as if they were equally many, the probabilities say "even", though
    # the real videos outnumber the fakes four to one
    from model_creation.training.evaluate import level_scores

    kept = [(item, score) for item, score in zip(items, raw, strict=True) if not is_self_blended(item)]
    rows = level_scores([i for i, _ in kept], calibration.apply([s for _, s in kept]).tolist(), "video")
    means = [np.mean([p for _, label, p in rows if label == truth]) for truth in (0, 1)]
    assert np.mean(means) == pytest.approx(0.5, abs=0.05)
    # the thresholds keep at most 5 % of the real videos above FAKE and 10 % of the fakes below REAL
    outcomes = calibration.metrics["outcomes"]
    assert outcomes["REAL"]["FAKE"] <= 0.05 * 40 and outcomes["FAKE"]["REAL"] <= 0.10 * 10
    assert calibration.thresholds.fake >= 0.65 and calibration.thresholds.real <= 0.35
    assert calibration.metrics["decided_share"] == pytest.approx(
        (
            sum(outcomes["REAL"].values())
            - outcomes["REAL"]["INCONCLUSIVE"]
            + outcomes["FAKE"]["FAKE"]
            + outcomes["FAKE"]["REAL"]
        )
        / 50
    )
    # the self-blended copies, apart: they are what the model trained on, so they rank far better
    blended = calibration.metrics["self_blended"]
    assert blended["auc"] > calibration.metrics["video"]["calibrated"]["auc"] and blended["n"] == 70


def test_a_balanced_loss_weighs_each_class_the_same():
    labels = np.array([0, 0, 0, 0, 1])
    assert balanced_log_loss(labels, np.array([0.5] * 5)) == pytest.approx(np.log(2))
    one_wrong_fake = balanced_log_loss(labels, np.array([0.1, 0.1, 0.1, 0.1, 0.1]))
    one_wrong_real = balanced_log_loss(np.array([1, 1, 1, 1, 0]), np.array([0.9, 0.9, 0.9, 0.9, 0.9]))
    assert one_wrong_fake == pytest.approx(one_wrong_real)


def test_calibration_needs_both_kinds_of_video():
    rng = np.random.default_rng(1)
    items, raw = _videos(reals=5, fakes=0, blended=5, rng=rng)
    with pytest.raises(ValueError, match="real and fake videos"):
        calibrate_out_of_fold(items, raw)


def test_decided_share_and_wrong_among_the_decided():
    outcomes = {"REAL": {"FAKE": 1, "INCONCLUSIVE": 5, "REAL": 4}, "FAKE": {"FAKE": 6, "INCONCLUSIVE": 3, "REAL": 1}}
    found = decision_figures(outcomes)
    assert found == {"videos": 20, "decided": 12, "wrong": 2, "decided_share": 0.6, "wrong_among_decided": 2 / 12}
    undecided = {"REAL": {"FAKE": 0, "INCONCLUSIVE": 2, "REAL": 0}, "FAKE": {"FAKE": 0, "INCONCLUSIVE": 1, "REAL": 0}}
    assert decision_figures(undecided)["wrong_among_decided"] is None


def test_validation_scores_round_trip_and_folds_may_not_overlap(tmp_path):
    rng = np.random.default_rng(2)
    items, raw = _videos(reals=3, fakes=2, blended=2, rng=rng)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_validation_scores(tmp_path / "a" / "validation_scores.json", items[:12], raw[:12], 3)
    write_validation_scores(tmp_path / "b" / "validation_scores.json", items[12:], raw[12:], 3)
    back, scores = read_validation_scores(tmp_path / "a" / "validation_scores.json")
    assert [(i.video.video_id, i.clip.window, i.video.label) for i in back] == [
        (i.video.video_id, i.clip.window, i.video.label) for i in items[:12]
    ]
    assert np.allclose(scores, raw[:12], atol=1e-6)
    files = score_files([tmp_path / "a", tmp_path / "b" / "validation_scores.json"])
    pooled, pooled_raw = scores_of(files)
    assert len(pooled) == len(pooled_raw) == len(items) and any(is_self_blended(item) for item in pooled)
    with pytest.raises(ValueError, match="another file scored too"):
        scores_of([files[0], files[0]])
    with pytest.raises(ValueError, match=r"holds no validation_scores\.json"):
        score_files([tmp_path])


def _run(command: str, *args) -> str:
    out = StringIO()
    call_command(command, *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


QUICK = ["--backbone", "custom_cnn", "--frame-model", "--batch-size", "8", "--workers", "0", "--no-progress"]
QUICK += ["--no-tensorboard", "--pretrained", "random", "--synthesize-fakes", "sbi", "--epochs", "2"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return synthetic_manifest(tmp_path_factory.mktemp("clips"), videos_per_label=6, clips_per_video=2, length=6)


def test_cross_validation_with_no_monitor_keeps_last_epochs_and_calibrates_a_model_trained_on_everything(
    manifest, tmp_path
):
    cv = tmp_path / "cv"
    _run(
        "train_model",
        "--manifest",
        manifest,
        "--output",
        cv,
        *QUICK,
        "--folds",
        "3",
        "--monitor",
        "none",
        "--calibration",
        "none",
    )
    for fold in sorted(cv.glob("fold_*")):
        scores = json.loads((fold / "validation_scores.json").read_text())
        assert scores["epoch"] == 2, "the last epoch, not one chosen on the fold's own validation videos"
    final = tmp_path / "final"
    _run(
        "train_model",
        "--manifest",
        manifest,
        "--output",
        final,
        *QUICK,
        "--val-fraction",
        "0",
        "--monitor",
        "none",
        "--calibration",
        "none",
    )
    checkpoint = load_checkpoint(final / "best.pt")
    assert checkpoint.training["epoch"] == 2 and checkpoint.calibration is None
    assert sum(checkpoint.training["clips"]["train"].values()) == 24, "every clip trains"
    said = _run("calibrate_model", final / "best.pt", "--scores", cv)
    assert "50/50 prior" in said and "out of fold" in said and "decided" in said
    calibrated = load_checkpoint(final / "best.pt")
    assert calibrated.calibration.fitted_on["split"] == "out of fold"
    assert calibrated.calibration.fitted_on["videos"] == {"REAL": 6, "FAKE": 6}
    with pytest.raises(CommandError, match=r"holds no validation_scores\.json"):
        _run("calibrate_model", final / "best.pt", "--scores", tmp_path)
    with pytest.raises(CommandError, match=r"--val-fraction 0 .* --monitor none"):
        _run("train_model", "--manifest", manifest, "--output", tmp_path / "x", *QUICK, "--val-fraction", "0")


def test_a_frame_model_may_score_windows_of_several_frames_but_an_lstm_never_one(tmp_path):
    config = ModelConfig(backbone="custom_cnn", hidden_size=8, head="frame")
    model = DeepfakeDetector(config, pretrained="random")
    checkpoint = new_checkpoint(config, Preprocessing(image_size=64), 10, model=model, name="windowed")
    save_checkpoint(checkpoint, tmp_path / "windowed.pt")
    loaded = load_checkpoint(tmp_path / "windowed.pt")
    assert loaded.sequence_length == 10 and loaded.window_length == 10 and loaded.architecture.is_frame_model
    lstm = ModelConfig(backbone="custom_cnn", hidden_size=8)
    broken = new_checkpoint(lstm, Preprocessing(image_size=64), 1, model=DeepfakeDetector(lstm, pretrained="random"))
    save_checkpoint(broken, tmp_path / "broken.pt")
    with pytest.raises(NotACheckpoint, match="sequence length 1 is a frame model's"):
        load_checkpoint(tmp_path / "broken.pt")
    # a windowed frame model scores a window as the mean of its frames' probabilities
    clips = torch.rand(2, 10, 3, 64, 64)
    with torch.inference_mode():
        window = torch.softmax(model.eval()(clips), dim=-1)
        frames = torch.stack([torch.softmax(model(clips[:, t : t + 1]), dim=-1) for t in range(10)]).mean(0)
    assert torch.allclose(window, frames, atol=1e-5)
