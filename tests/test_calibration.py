"""Calibration, the three-way verdict and its thresholds, and the metrics behind them (issue: verdicts that mean what
they say)."""

from __future__ import annotations

import json
import math
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from sklearn import metrics as sk

from ml_app.detection.calibration import Calibration, Thresholds, score_rule
from ml_app.detection.checkpoints import load_checkpoint, save_checkpoint
from ml_app.detection.decision import DISAGREEMENT, decide, person_verdict, verdict_of
from ml_app.detection.errors import ConfigurationError, NotACheckpoint
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video
from ml_app.detection.results import AnalysisResult, TrackScore, WindowResult
from model_creation.training import metrics
from model_creation.training.calibrate import (
    CalibrationError,
    fake_threshold,
    fit_calibration,
    fit_parameters,
    real_threshold,
)
from model_creation.training.dataset import ClipItem
from model_creation.training.manifest import ClipRecord, VideoRecord

# --- synthetic validation data ---------------------------------------------------------------------------------------


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true probability, and raw scores four times as sure of themselves (in log-odds)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return labels, 1 / (1 + np.exp(-4 * z))


def items_for(labels: np.ndarray, clips_per_video: int = 1) -> list[ClipItem]:
    """One video per ``clips_per_video`` clips (same label within a video), one person each."""
    items = []
    for index, label in enumerate(labels):
        video = index // clips_per_video
        record = VideoRecord(
            video_id=f"v{video}",
            video=f"v{video}.mp4",
            source_path="",
            label="FAKE" if label else "REAL",
            dataset="synthetic",
            group=f"g{video}",
            method="synthetic" if label else "",
        )
        clip = ClipRecord(
            f"c{index}.npy", window=index % clips_per_video, start_frame=0, track=0, person=0, frames=8, filled=0
        )
        items.append(ClipItem(record, clip))
    return items


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibration_lowers_the_brier_score_of_overconfident_scores_on_held_out_data(method):
    fit_labels, fit_scores = overconfident(3000, seed=1)
    test_labels, test_scores = overconfident(3000, seed=2)
    calibration = Calibration(method, fit_parameters(fit_labels, fit_scores, method), Thresholds(0.5, 0.5))
    calibrated = calibration.apply(test_scores)
    raw_brier = metrics.brier_score(test_labels, test_scores)
    assert metrics.brier_score(test_labels, calibrated) < raw_brier - 0.01
    assert metrics.expected_calibration_error(test_labels, calibrated) < metrics.expected_calibration_error(
        test_labels, test_scores
    )
    assert metrics.roc_auc(test_labels, calibrated) == pytest.approx(
        metrics.roc_auc(test_labels, test_scores), abs=0.01
    )
    if method == "temperature":
        assert calibration.parameters["temperature"] == pytest.approx(4.0, rel=0.25), "undoes the factor of four"


def test_isotonic_apply_equals_scikit_learns_predict():
    from sklearn.isotonic import IsotonicRegression

    labels, scores = overconfident(500, seed=3)
    parameters = fit_parameters(labels, scores, "isotonic")
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    probe = np.linspace(-0.1, 1.1, 97)
    assert np.allclose(Calibration("isotonic", parameters, Thresholds(0.5, 0.5)).apply(probe), model.predict(probe))


def test_fit_calibration_records_its_data_and_chooses_thresholds_on_videos():
    labels, scores = overconfident(400, seed=4)
    items = items_for(labels)
    calibration = fit_calibration(items, scores, "auto", max_fpr=0.05, max_miss=0.10, source={"split": "validation"})
    assert calibration.method == "platt", "fewer than 200 clips of a class: Platt, not isotonic"
    on = calibration.fitted_on
    assert on["split"] == "validation" and on["clips"] == {"REAL": int((labels == 0).sum()), "FAKE": int(labels.sum())}
    assert len(on["scores"]) == len(items) and on["scores"][0][3] == int(labels[0])
    calibrated = calibration.apply(scores)
    real, fake = calibrated[labels == 0], calibrated[labels == 1]
    t = calibration.thresholds
    assert np.mean(real >= t.fake) <= 0.05 and t.fake >= 0.5
    assert np.mean(fake <= t.real) <= 0.10 and t.real <= 0.5
    outcomes = calibration.metrics["outcomes"]
    assert outcomes["REAL"]["FAKE"] == int(np.sum(real >= t.fake))
    assert calibration.metrics["clip"]["calibrated"]["brier"] < calibration.metrics["clip"]["raw"]["brier"]
    rule = calibration.fitted_on["threshold_rule"]
    assert rule["verifiable"] and "note" not in rule
    assert t.fake >= 0.65 and t.real <= 0.35, "the default margin of 0.15 around 0.5"
    few = fit_calibration(items_for(labels[:12]), scores[:12])
    assert not few.fitted_on["threshold_rule"]["verifiable"]
    assert "cannot show a 5% false-positive" in few.fitted_on["threshold_rule"]["note"]
    with pytest.raises(CalibrationError, match="REAL and FAKE"):
        fit_calibration(items_for(np.zeros(10, dtype=np.int64)), np.full(10, 0.3))


def test_thresholds_follow_the_rates_exactly():
    reals = [0.1, 0.2, 0.3, 0.9]  # one of four real videos is high
    assert fake_threshold(reals, 0.05) > 0.9, "no real video may be called FAKE at 5 %"
    assert fake_threshold(reals, 0.25) == pytest.approx(0.5), "one in four may: the lowest allowed, but never below 0.5"
    assert (
        fake_threshold([0.1, 0.7, 0.72], 0.0) == pytest.approx(0.72, abs=1e-9)
        and fake_threshold([0.1, 0.7, 0.72], 0.0) > 0.72
    )
    assert fake_threshold(reals, 0.25, min_margin=0.15) == pytest.approx(0.65), "the margin keeps a band"
    fakes = [0.05, 0.6, 0.8, 0.9]
    assert real_threshold(fakes, 0.25, min_margin=0.15) == pytest.approx(0.35)
    assert real_threshold(fakes, 0.0) < 0.05, "no fake may be called REAL"
    assert real_threshold(fakes, 0.25) == pytest.approx(0.5), "one in four may, capped at 0.5"


# --- the three-way rule ----------------------------------------------------------------------------------------------


def test_three_way_verdict_at_and_around_both_thresholds():
    t = Thresholds(fake=0.7, real=0.3)
    assert verdict_of(0.7, t) == "FAKE" and verdict_of(np.nextafter(0.7, 0), t) == "INCONCLUSIVE"
    assert verdict_of(0.3, t) == "REAL" and verdict_of(np.nextafter(0.3, 1), t) == "INCONCLUSIVE"
    assert verdict_of(0.5, t) == "INCONCLUSIVE" and verdict_of(0.0, t) == "REAL" and verdict_of(1.0, t) == "FAKE"
    with pytest.raises(ValueError, match="REAL"):
        Thresholds(fake=0.3, real=0.7)


def test_windows_that_disagree_are_not_averaged_into_real():
    t = Thresholds(fake=0.7, real=0.5)
    assert person_verdict([0.84, 0.13, 0.10, 0.12], t) == ("INCONCLUSIVE", "windows_disagree")
    assert person_verdict([0.1, 0.1 + DISAGREEMENT - 0.01], t)[0] == "REAL", "below the disagreement, the mean decides"
    assert person_verdict([0.95, 0.9, 0.4], t)[0] == "FAKE", "a FAKE mean stays FAKE"
    assert person_verdict([0.6], t) == ("INCONCLUSIVE", "uncertain")


def _window(index: int, scores: list[float]) -> WindowResult:
    window = WindowResult(index, index * 10, index * 10 + 9, index, index + 0.3, 10, "scored", len(scores))
    window.tracks = [
        TrackScore(track_id=i, person_id=-1, fake_probability=s, boxes=[], filled_frames=0, raw_probability=s)
        for i, s in enumerate(scores)
    ]
    return window


@pytest.mark.parametrize(
    ("windows", "verdict", "reason"),
    [
        ([[0.1], [0.2]], "REAL", None),
        ([[0.1], [0.9]], "INCONCLUSIVE", "windows_disagree"),
        ([[0.45], [0.5]], "INCONCLUSIVE", "uncertain"),
        ([[0.1, 0.95], [0.1, 0.9]], "FAKE", None),  # one swapped face of two makes the video fake
    ],
)
def test_decide_gives_the_video_three_outcomes_with_reasons(windows, verdict, reason):
    result = AnalysisResult(verdict="INCONCLUSIVE", sequence_length=10, video={}, checkpoint={})
    result.thresholds = Thresholds(fake=0.7, real=0.3)
    result.windows = [_window(i, scores) for i, scores in enumerate(windows)]
    people = {(w.index, t.track_id): t.track_id for w in result.windows for t in w.tracks}
    decide(result, people)
    assert result.verdict == verdict
    assert (result.reason or {}).get("code") == reason
    if verdict == "INCONCLUSIVE":
        assert result.confidence is None and result.fake_probability is not None
        assert "0.70" in result.reason["message"] or "disagree" in result.reason["message"]
    payload = result.to_dict()
    assert payload["thresholds"] == {"fake": 0.7, "real": 0.3, "source": "checkpoint"}
    assert {p["verdict"] for p in payload["people"]} <= {"REAL", "FAKE", "INCONCLUSIVE"}


# --- checkpoints with and without calibration ------------------------------------------------------------------------


def _calibrated_copy(tiny_checkpoint, path, fake=0.6, real=0.4):
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint.training = {"untrained": False}
    checkpoint.calibration = Calibration("temperature", {"temperature": 2.0}, Thresholds(fake, real))
    save_checkpoint(checkpoint, path)
    return path


def test_an_uncalibrated_checkpoint_falls_back_to_raw_scores_and_says_so(tiny_checkpoint, one_face_video, tmp_path):
    checkpoint = load_checkpoint(tiny_checkpoint)
    checkpoint.training = {"untrained": False}  # a trained file from before calibration existed
    save_checkpoint(checkpoint, tmp_path / "old.pt")
    result = analyze_video(one_face_video, load_detector_model(tmp_path / "old.pt", "cpu"), max_windows=2)
    assert result.calibration["calibrated"] is False and "raw" in result.calibration["meaning"]
    assert result.thresholds == Thresholds(0.5, 0.5, "uncalibrated")
    assert any("carries no calibration" in w and "calibrate_model" in w for w in result.warnings)
    track = result.windows[0].tracks[0]
    assert track.fake_probability == track.raw_probability


def test_a_calibrated_checkpoint_scores_with_its_calibration(tiny_checkpoint, one_face_video, tmp_path):
    path = _calibrated_copy(tiny_checkpoint, tmp_path / "calibrated.pt")
    loaded = load_detector_model(path, "cpu")
    assert loaded.checkpoint.calibration.thresholds == Thresholds(0.6, 0.4)
    result = analyze_video(one_face_video, loaded, max_windows=2)
    track = result.windows[0].tracks[0]
    raw = track.raw_probability
    assert track.fake_probability == pytest.approx(1 / (1 + math.exp(-math.log(raw / (1 - raw)) / 2.0)), abs=1e-9)
    assert result.calibration["calibrated"] and result.calibration["method"] == "temperature"
    assert result.to_dict()["checkpoint"]["calibration"]["thresholds"]["fake"] == 0.6
    assert not any("no calibration" in w for w in result.warnings)


def test_a_malformed_calibration_makes_a_clear_error(tiny_checkpoint, tmp_path):
    import torch

    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["calibration"] = {"method": "temperature", "parameters": {"temperature": -1}, "thresholds": {}}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(NotACheckpoint, match="invalid calibration"):
        load_checkpoint(tmp_path / "bad.pt")


def test_settings_and_flags_override_the_checkpoints_thresholds(tiny_checkpoint, tmp_path, settings):
    from ml_app.verdict_rule import rule_for

    checkpoint = load_checkpoint(_calibrated_copy(tiny_checkpoint, tmp_path / "c.pt"))
    assert rule_for(checkpoint).thresholds == Thresholds(0.6, 0.4, "checkpoint")
    settings.FAKE_THRESHOLD, settings.REAL_THRESHOLD = 0.9, 0.1
    assert rule_for(checkpoint).thresholds == Thresholds(0.9, 0.1, "settings")
    assert rule_for(checkpoint, fake=0.8).thresholds == Thresholds(0.8, 0.1, "option"), "a flag beats the setting"
    settings.FAKE_THRESHOLD, settings.REAL_THRESHOLD = 0.3, None
    with pytest.raises(ConfigurationError, match="FAKE_THRESHOLD and REAL_THRESHOLD"):
        rule_for(checkpoint)  # 0.3 for FAKE below the checkpoint's REAL 0.4
    assert score_rule(None, 0.8, 0.2).thresholds == Thresholds(0.8, 0.2, "settings")


def test_a_bad_threshold_setting_is_refused_at_start(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from project_settings.env import env_probability

    monkeypatch.setenv("FAKE_THRESHOLD", "1.5")
    with pytest.raises(ImproperlyConfigured, match="between 0 and 1"):
        env_probability("FAKE_THRESHOLD")
    monkeypatch.setenv("FAKE_THRESHOLD", "high")
    with pytest.raises(ImproperlyConfigured, match="a number"):
        env_probability("FAKE_THRESHOLD")


def test_analyze_video_flags_set_the_thresholds(tiny_checkpoint, one_face_video, tmp_path):
    path = _calibrated_copy(tiny_checkpoint, tmp_path / "c.pt")
    out = StringIO()
    call_command(
        "analyze_video",
        str(one_face_video),
        "--checkpoint",
        str(path),
        "--json",
        "--max-windows",
        "2",
        "--fake-threshold",
        "1.0",
        "--real-threshold",
        "0.0",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["thresholds"] == {"fake": 1.0, "real": 0.0, "source": "option"}
    assert result["verdict"] == "INCONCLUSIVE" and result["reason"]["code"] in ("uncertain", "windows_disagree")
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("analyze_video", str(one_face_video), "--checkpoint", str(path), "--fake-threshold", "2")


# --- metrics from scikit-learn ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_scikit_learn_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = np.round(rng.random(n), 2)  # ties on purpose
    result = metrics.binary_metrics(labels, scores, threshold=0.4)
    predicted = (scores >= 0.4).astype(int)
    assert result["auc"] == pytest.approx(sk.roc_auc_score(labels, scores))
    assert result["brier"] == pytest.approx(sk.brier_score_loss(labels, scores))
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert result["f1"] == pytest.approx(sk.f1_score(labels, predicted, zero_division=0))
    assert result["confusion"] == sk.confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    # the rank statistic by hand: a FAKE outscores a REAL, ties counting half
    pairs = [(f > r) + 0.5 * (f == r) for f in scores[labels == 1] for r in scores[labels == 0]]
    assert result["auc"] == pytest.approx(np.mean(pairs))
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    eer, _ = metrics.equal_error_rate(labels, scores)
    assert min(fpr.min(), (1 - tpr).min()) <= eer <= max(fpr.max(), (1 - tpr).max())
    table = metrics.reliability(labels, scores)
    assert sum(row["count"] for row in table) == n
    manual = sum(row["count"] * abs(row["predicted"] - row["observed"]) for row in table) / n
    assert result["ece"] == pytest.approx(manual)


def test_undefined_metrics_stay_undefined():
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.9]))
    assert math.isnan(metrics.equal_error_rate([0, 0], [0.2, 0.9])[0])
    assert math.isnan(metrics.brier_score([], []))
    assert metrics.binary_metrics([0, 0], [0.1, 0.2])["precision"] == 0.0
    assert metrics.reliability([1, 1, 1], [0.05, 0.5, 0.95])[0]["observed"] == 1.0


# --- stored results from before --------------------------------------------------------------------------------------


def test_results_stored_before_calibration_get_todays_shape():
    from importlib import import_module

    upgrade = import_module("ml_app.migrations.0004_results_with_thresholds").upgrade
    old = {
        "verdict": "REAL",
        "fake_probability": 0.4,
        "threshold": 0.5,
        "checkpoint": {"name": "x"},
        "windows": [
            {"index": 0, "fake_probability": 0.2, "tracks": [{"person_id": 0, "fake_probability": 0.2}]},
            {"index": 1, "fake_probability": 0.6, "tracks": [{"person_id": 0, "fake_probability": 0.6}]},
        ],
        "people": [{"person_id": 0, "windows": [0, 1], "fake_probability": 0.4, "verdict": "REAL"}],
    }
    new = upgrade(old)
    assert "threshold" not in new and new["thresholds"] == {"fake": 0.5, "real": 0.5, "source": "uncalibrated"}
    assert new["calibration"]["calibrated"] is False
    person = new["people"][0]
    assert person["window_probabilities"] == [0.2, 0.6] and person["disagreement"] == pytest.approx(0.4)
    assert new["windows"][1]["tracks"][0]["raw_probability"] == 0.6


def test_an_onnx_export_carries_the_calibration(tiny_checkpoint, tmp_path):
    from ml_app.detection.onnx_model import load_onnx_checkpoint

    path = _calibrated_copy(tiny_checkpoint, tmp_path / "c.pt")
    call_command("export_onnx", str(path), "--output", str(tmp_path / "c.onnx"), stdout=StringIO())
    exported, _ = load_onnx_checkpoint(tmp_path / "c.onnx")
    assert exported.calibration == load_checkpoint(path).calibration
    assert exported.calibration.apply_one(0.8) == pytest.approx(load_checkpoint(path).calibration.apply_one(0.8))
