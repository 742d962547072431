"""Scoring clips with a model and turning clip scores into window and video verdicts the way the app does.

Three levels, each with the metrics of :mod:`.metrics` (FAKE positive):

* ``clip``: one face followed through one window, what the network scores;
* ``window`` and ``video``: the app's rule itself (:mod:`ml_app.detection.decision`): a window is its most
  suspicious face, a person the mean of their windows, a video its most suspicious person.

Labels are per video, so in a fake video with a real bystander the bystander's clips count as FAKE at clip level;
the window and video levels are where that matters least. Reports break the numbers down per source dataset and per
manipulation method (that method's fakes against the real videos of the same datasets).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ml_app.detection.calibration import Thresholds
from ml_app.detection.decision import (
    person_probability,
    video_probability,
    video_verdict_of_scores,
    window_probability,
)
from ml_app.detection.results import Verdict
from ml_app.detection.scoring import fake_probabilities

from .dataset import ClipDataset, ClipItem
from .manifest import OK
from .metrics import binary_metrics

LEVELS = ("clip", "window", "video")


def score_dataset(
    model: torch.nn.Module,
    dataset: ClipDataset,
    device: torch.device,
    batch_size: int = 8,
    workers: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """Fake probability of every item of ``dataset``, in order."""
    fake_index = dataset.preprocessing.fake_index
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    scores = np.zeros(len(dataset), dtype=np.float64)
    model.eval()
    with torch.inference_mode():
        for clips, _, indices in tqdm(loader, desc="scoring", unit="batch", file=sys.stderr, disable=not progress):
            probabilities = fake_probabilities(model(clips.to(device)), fake_index)
            scores[indices.numpy()] = probabilities.cpu().numpy()
    return scores


def is_fake(label: str) -> int:
    return int(label == "FAKE")


def level_scores(items: Sequence[ClipItem], scores: Sequence[float], level: str) -> list[tuple[str, int, float]]:
    """``(key, label, score)`` per clip, window or video; keys are video ids (with window/track for finer levels)."""
    if level == "clip":
        return [
            (f"{i.video.video_id}/{i.clip.window}/{i.clip.track}", is_fake(i.video.label), float(s))
            for i, s in zip(items, scores, strict=True)
        ]
    if level == "window":
        windows: dict[tuple[str, int], list[float]] = defaultdict(list)
        labels: dict[str, int] = {}
        for item, score in zip(items, scores, strict=True):
            windows[(item.video.video_id, item.clip.window)].append(float(score))
            labels[item.video.video_id] = is_fake(item.video.label)
        rows = []
        for (video, window), values in windows.items():
            probability = window_probability(values)
            assert probability is not None, "a window key exists only with a clip score"
            rows.append((f"{video}/{window}", labels[video], probability))
        return rows
    if level != "video":
        raise ValueError(f"unknown level {level!r}")
    people, labels = _people_of(items, scores)
    return [
        (video, labels[video], video_probability(person_probability(values) for values in persons.values()))
        for video, persons in people.items()
    ]


def _people_of(
    items: Sequence[ClipItem], scores: Sequence[float]
) -> tuple[dict[str, dict[int, list[float]]], dict[str, int]]:
    """Per video, each person's window scores (one clip per window), and the video's label."""
    people: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    labels: dict[str, int] = {}
    for item, score in zip(items, scores, strict=True):
        people[item.video.video_id][item.clip.person].append(float(score))
        labels[item.video.video_id] = is_fake(item.video.label)
    return people, labels


def video_calls(items: Sequence[ClipItem], scores: Sequence[float], thresholds: Thresholds) -> dict[str, Verdict]:
    """What the app answers for each video: the three-way rule with its disagreement check, per person."""
    people, _ = _people_of(items, scores)
    return {video: video_verdict_of_scores(persons.values(), thresholds) for video, persons in people.items()}


def level_metrics(items: Sequence[ClipItem], scores: Sequence[float], level: str, threshold: float = 0.5) -> dict:
    rows = level_scores(items, scores, level)
    return binary_metrics([label for _, label, _ in rows], [score for _, _, score in rows], threshold)


def evaluation_report(items: Sequence[ClipItem], scores: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Metrics at every level, overall, per dataset and per manipulation method."""
    scores = list(scores)

    def metrics_of(indices: list[int]) -> dict[str, Any]:
        chosen = [items[i] for i in indices]
        chosen_scores = [scores[i] for i in indices]
        return {level: level_metrics(chosen, chosen_scores, level, threshold) for level in LEVELS}

    everything = list(range(len(items)))
    report: dict[str, Any] = {
        "threshold": threshold,
        "overall": metrics_of(everything),
        "per_dataset": {},
        "per_method": {},
    }
    datasets = sorted({item.video.dataset for item in items})
    for dataset in datasets:
        report["per_dataset"][dataset] = metrics_of([i for i in everything if items[i].video.dataset == dataset])
    methods = sorted({item.video.method for item in items if item.video.label == "FAKE" and item.video.method})
    for method in methods:
        method_datasets = {item.video.dataset for item in items if item.video.method == method}
        chosen = [
            i
            for i in everything
            if items[i].video.method == method
            or (items[i].video.label == "REAL" and items[i].video.dataset in method_datasets)
        ]
        report["per_method"][method] = metrics_of(chosen)
    return report


def outcome_counts(
    items: Sequence[ClipItem], scores: Sequence[float], thresholds: Thresholds
) -> dict[str, dict[str, int]]:
    """Per truth (REAL, FAKE): how many videos the app calls FAKE, REAL or INCONCLUSIVE (:func:`video_calls`)."""
    _, labels = _people_of(items, scores)
    table = {truth: {"FAKE": 0, "REAL": 0, "INCONCLUSIVE": 0} for truth in ("REAL", "FAKE")}
    for video, called in video_calls(items, scores, thresholds).items():
        table["FAKE" if labels[video] else "REAL"][called] += 1
    return table


def decision_figures(outcomes: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The headline of a three-way answer: the share of videos decided (called FAKE or REAL) and, among those, the
    share called wrongly (a real video FAKE or a fake REAL). None where nothing was decided."""
    total = sum(sum(row.values()) for row in outcomes.values())
    decided = sum(row.get("FAKE", 0) + row.get("REAL", 0) for row in outcomes.values())
    wrong = outcomes.get("REAL", {}).get("FAKE", 0) + outcomes.get("FAKE", {}).get("REAL", 0)
    return {
        "videos": total,
        "decided": decided,
        "wrong": wrong,
        "decided_share": decided / total if total else None,
        "wrong_among_decided": wrong / decided if decided else None,
    }


def calibration_figures(items: Sequence[ClipItem], scores: Sequence[float], level: str) -> dict[str, Any]:
    """How well ``scores`` are calibrated at ``level``: n, AUC, accuracy, log loss, Brier, ECE and the reliability
    table (what a calibration records on its validation data and evaluate_model reports)."""
    from .metrics import reliability

    rows = level_scores(items, scores, level)
    labels, values = [label for _, label, _ in rows], [score for _, _, score in rows]
    metrics = binary_metrics(labels, values)
    figures = {key: metrics[key] for key in ("n", "auc", "accuracy", "log_loss", "brier", "ece")}
    return {**figures, "reliability": reliability(labels, values)}


def calibration_report(items: Sequence[ClipItem], raw: Sequence[float], calibrated: Sequence[float], rule) -> dict:
    """What an evaluation adds about calibration: the thresholds, three-way video outcomes per truth, the raw
    metrics beside the calibrated ones, and the reliability tables (clip and video) of both."""
    report: dict[str, Any] = {
        "calibrated": rule.calibrated,
        "calibration": rule.describe(),
        "thresholds": rule.thresholds.to_dict(),
        "outcomes": (outcomes := outcome_counts(items, calibrated, rule.thresholds)),
        "decisions": decision_figures(outcomes),
        "reliability": {
            level: {
                "raw": calibration_figures(items, raw, level),
                **({"calibrated": calibration_figures(items, calibrated, level)} if rule.calibrated else {}),
            }
            for level in ("clip", "video")
        },
    }
    if rule.calibrated:
        report["raw_overall"] = {level: level_metrics(items, raw, level) for level in LEVELS}
    return report


def usable_items(videos, splits: set[str] | None = None) -> list[ClipItem]:
    """Clips of the videos that yielded some, optionally only from the given manifest splits ("" = none given)."""
    return [
        ClipItem(video, clip)
        for video in videos
        if video.status == OK and (splits is None or video.split in splits)
        for clip in video.clips
    ]
