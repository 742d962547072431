"""``analyze_video --json`` gives the recorded answers: tests/golden/analyze_video.json was first written by the code
before the pipeline was cut into its jobs (the redesign changed nothing), and again when the shipped models got their
calibration and three outcomes, when the 20-frame model was rebuilt with CenterFace and when recipe 2's files
replaced recipe 1's and were rebuilt with photos (``python -m tests.golden.make_golden``; see its docstring for
when to re-record).
Decisions are compared exactly, probabilities and boxes within what differs between machines (see below)."""

from __future__ import annotations

import json
import math
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from .conftest import REPO
from .golden.make_golden import CHECKPOINTS, RECORD, USER_THRESHOLDS, WITH_THRESHOLDS, stable, videos

# The record was made on one machine; OpenCV's and FFmpeg's SIMD kernels differ between CPUs (cv2.resize gives other
# pixels with and without its optimised code), so the generated videos, their decoded frames and the crops differ a
# little from machine to machine. Measured between two CPU types: probabilities up to 0.017 apart, boxes up to 10 px,
# the encoded file 0.3% bigger. What must not move are the decisions: verdicts, reasons, statuses, windows, people.
PROBABILITY_TOLERANCE = 0.03
BOX_TOLERANCE = 12  # pixels
MACHINE_DEPENDENT = {".video.size_bytes"}  # the encoder's output size
_NUMBER = re.compile(r"\d+\.\d+")


def _close(expected: float, got: float, where: str) -> bool:
    if ".boxes[" in where:
        return abs(expected - got) <= BOX_TOLERANCE
    return math.isclose(expected, got, rel_tol=0, abs_tol=PROBABILITY_TOLERANCE)


def _differences(expected: Any, got: Any, where: str = "") -> list[str]:
    """Where two JSON values differ: probabilities and boxes within their tolerance, numbers inside messages
    ignored, everything else exactly."""
    if where in MACHINE_DEPENDENT:
        return []
    if isinstance(expected, dict) and isinstance(got, dict):
        if set(expected) != set(got):
            return [f"{where}: keys {sorted(set(expected) ^ set(got))} differ"]
        return [d for key in expected for d in _differences(expected[key], got[key], f"{where}.{key}")]
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{where}: {len(expected)} items expected, {len(got)} got"]
        pairs = enumerate(zip(expected, got, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(expected, bool) or isinstance(got, bool):
        return [] if expected is got else [f"{where}: {expected!r} expected, {got!r} got"]
    if isinstance(expected, float) or (".boxes[" in where and isinstance(expected, int)):
        if not isinstance(got, int | float):
            return [f"{where}: {expected!r} expected, {got!r} got"]
        return [] if _close(expected, got, where) else [f"{where}: {expected} != {got}"]
    if isinstance(expected, str) and isinstance(got, str):
        return [] if _NUMBER.sub("#", expected) == _NUMBER.sub("#", got) else [f"{where}: {expected!r} != {got!r}"]
    return [] if expected == got else [f"{where}: {expected!r} expected, {got!r} got"]


@pytest.fixture(scope="module")
def golden_videos(tmp_path_factory) -> dict[str, Path]:
    return videos(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    return json.loads(RECORD.read_text())


def test_the_record_covers_every_outcome(record):
    """The record is worth comparing against: FAKE and INCONCLUSIVE verdicts, scored and faceless windows, people."""
    verdicts = {entry["verdict"] for entry in record.values()}
    statuses = {window["status"] for entry in record.values() for window in entry["windows"]}
    assert {"FAKE", "INCONCLUSIVE"} <= verdicts and {"scored", "no_face"} <= statuses
    assert max(len(entry["people"]) for entry in record.values()) == 2
    assert len(record) == len(CHECKPOINTS) * 4 + 1


@pytest.mark.parametrize("length", sorted(CHECKPOINTS))
@pytest.mark.parametrize("name", ["one_face", "two_faces", "faceless", "face_then_empty"])
def test_analyze_video_json_matches_the_golden_record(record, golden_videos, name, length):
    out = StringIO()
    call_command(
        "analyze_video", str(golden_videos[name]), "--checkpoint", str(REPO / CHECKPOINTS[length]), "--json", stdout=out
    )
    got = stable(json.loads(out.getvalue()))
    assert _differences(record[f"{name}@{length}"], got) == []


def test_analyze_video_json_with_a_users_thresholds_matches_the_golden_record(record, golden_videos):
    out = StringIO()
    checkpoint = str(REPO / CHECKPOINTS[20])
    call_command(
        "analyze_video",
        str(golden_videos["one_face"]),
        "--checkpoint",
        checkpoint,
        "--json",
        *USER_THRESHOLDS,
        stdout=out,
    )
    got = stable(json.loads(out.getvalue()))
    assert got["verdict"] == "FAKE" and _differences(record[WITH_THRESHOLDS], got) == []


def test_the_comparison_notices_a_changed_probability(record):
    entry = json.loads(json.dumps(record["one_face@10"]))
    entry["windows"][0]["tracks"][0]["fake_probability"] += 0.05
    entry["windows"][0]["tracks"][0]["boxes"][0][0] += 20
    entry["verdict"] = "REAL"
    found = _differences(record["one_face@10"], entry)
    assert len(found) == 3 and any("fake_probability" in d for d in found) and any("verdict" in d for d in found)
    assert any(".boxes[0][0]" in d for d in found)
    entry = json.loads(json.dumps(record["one_face@10"]))
    entry["windows"][0]["tracks"][0]["fake_probability"] += 0.01  # machine noise
    entry["windows"][0]["tracks"][0]["boxes"][0][0] += 5
    assert _differences(record["one_face@10"], entry) == []
