"""The app's rule (window = most suspicious face, person = mean of windows, video = most suspicious person) exists
once: ``analyze_video`` and ``evaluate_model`` both use :mod:`ml_app.detection.decision`, and give the same scores."""

from __future__ import annotations

import csv
import math
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from ml_app.detection.calibration import Thresholds
from ml_app.detection.decision import (
    decide,
    link_people,
    person_probability,
    video_probability,
    window_probability,
)
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video
from ml_app.detection.results import AnalysisResult, TrackScore, WindowResult

from .conftest import REPO
from .golden.make_golden import face_then_empty

SHIPPED_10 = REPO / "models" / "default_mobilenet_v2_10_frames.pt"


def _window(index: int, status: str = "scored", scores: dict[int, float] | None = None) -> WindowResult:
    window = WindowResult(index, index * 10, index * 10 + 9, index * 0.4, index * 0.4 + 0.36, 10, status, 1)  # type: ignore[arg-type]
    for track_id, probability in (scores or {}).items():
        window.tracks.append(TrackScore(track_id, -1, probability, [], 0))
    return window


def _result(windows: list[WindowResult], threshold: float = 0.5) -> AnalysisResult:
    """A result judged at one threshold (an empty INCONCLUSIVE band, as for an uncalibrated checkpoint)."""
    return AnalysisResult("INCONCLUSIVE", 10, {}, {}, thresholds=Thresholds(threshold, threshold), windows=windows)


def test_the_rule_in_numbers():
    assert window_probability([0.2, 0.9, 0.4]) == 0.9
    assert window_probability([]) is None
    assert person_probability([0.2, 0.4]) == pytest.approx(0.3)
    assert video_probability([0.3, 0.7, 0.1]) == 0.7


def test_decide_takes_the_most_suspicious_person_and_the_mean_of_their_windows():
    windows = [_window(0, scores={0: 0.9, 1: 0.2}), _window(1, scores={0: 0.5, 1: 0.3})]
    people_of = {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 0}  # the tracks swap ids between windows
    result = _result(windows)
    decide(result, people_of)
    assert [w.fake_probability for w in result.windows] == [0.9, 0.5]
    assert [(p.person_id, p.windows) for p in result.people] == [(0, [0, 1]), (1, [0, 1])]
    assert result.people[0].fake_probability == pytest.approx((0.9 + 0.3) / 2)
    assert result.people[1].fake_probability == pytest.approx((0.2 + 0.5) / 2)
    assert result.fake_probability == pytest.approx(0.6) and result.verdict == "FAKE"
    assert result.confidence == pytest.approx(0.6) and result.reason is None and not result.warnings


def test_decide_below_the_threshold_is_real_with_the_confidence_of_real():
    result = _result([_window(0, scores={0: 0.3}), _window(1, "no_face")], threshold=0.5)
    decide(result, {(0, 0): 0})
    assert result.verdict == "REAL" and result.confidence == pytest.approx(0.7)
    assert result.warnings and "Only 1 of 2 windows" in result.warnings[0]


@pytest.mark.parametrize(
    ("statuses", "code"),
    [(["video_ended"], "too_few_frames"), (["no_face", "face_lost"], "face_not_tracked"), (["no_face"], "no_face")],
)
def test_no_scored_window_is_inconclusive_with_the_reason(statuses, code):
    result = _result([_window(i, status) for i, status in enumerate(statuses)])
    decide(result, {})
    assert result.verdict == "INCONCLUSIVE" and result.fake_probability is None
    assert result.reason is not None and result.reason["code"] == code and result.reason["message"]


def test_link_people_joins_near_descriptors_and_never_two_faces_of_one_window():
    a, b = np.zeros(128), np.full(128, 0.2)  # distance 2.26: different people
    near_a = a + 0.01
    assignment = link_people([(0, {0: a, 1: b}), (1, {5: near_a}), (2, {0: near_a, 1: near_a + 0.001})])
    assert assignment[(0, 0)] == assignment[(1, 5)] == assignment[(2, 0)]
    assert assignment[(0, 1)] != assignment[(0, 0)]
    assert assignment[(2, 1)] not in (assignment[(2, 0)],), "two faces of one window are two people"


@pytest.fixture(scope="module")
def labelled_videos(tmp_path_factory) -> Path:
    """A folder-layout dataset of generated videos with one, two and a disappearing face."""
    from . import media

    root = tmp_path_factory.mktemp("rule")
    (root / "real").mkdir()
    (root / "fake").mkdir()
    media.face_video(root / "real" / "one_face.mp4", frames=48)
    face_then_empty(root / "real" / "face_then_empty.mp4")
    media.face_video(
        root / "fake" / "two_faces.mp4", frames=30, width=720, height=360, faces=((30, 60, 220), (420, 80, 220))
    )
    return root


def test_evaluate_model_scores_videos_exactly_as_analyze_video_decides(labelled_videos, tmp_path):
    windows = 4
    call_command(
        "evaluate_model",
        str(SHIPPED_10),
        "--videos",
        str(labelled_videos),
        "--layout",
        "folder",
        "--windows",
        str(windows),
        "--output",
        str(tmp_path / "eval"),
        "--no-progress",
        stdout=StringIO(),
    )
    with open(tmp_path / "eval" / "scores.csv", newline="") as handle:
        evaluated = {row["video"]: float(row["fake_probability"]) for row in csv.DictReader(handle)}
    loaded = load_detector_model(SHIPPED_10, "cpu")
    analysed = {
        f"{path.parent.name}/{path.name}": analyze_video(path, loaded, max_windows=windows, keep_crops=False)
        for path in sorted(labelled_videos.glob("*/*.mp4"))
    }
    assert set(evaluated) == set(analysed)
    for video, result in analysed.items():
        assert result.fake_probability is not None and math.isfinite(result.fake_probability)
        assert evaluated[video] == pytest.approx(result.fake_probability, abs=1e-5), video
    # the videos differ, so equal numbers are not a coincidence of a constant model
    assert len({round(score, 3) for score in evaluated.values()}) == len(evaluated)
