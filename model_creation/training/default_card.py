"""The model card's tables for recipe 2, from ``build_default_model``'s report (``build.json``).

Every figure the card quotes is printed here from the evaluation reports, so the card and the rebuild agree:
the candidates on the fixed test split, the leave-one-source-out experiments, how the test videos are called
with each model's calibration and thresholds, and what the app's ensemble of the shipped lengths makes of them.
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from ml_app.detection.calibration import Thresholds
from ml_app.detection.decision import person_verdict
from ml_app.detection.ensemble import mean_thresholds

from .default_recipe import CHOICE_MARGIN

FFPP_METHODS = ("ffpp-deepfakes", "ffpp-face2face", "ffpp-faceswap", "ffpp-neuraltextures")


def fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def called(row: dict[str, int]) -> str:
    return f"{row['FAKE']} / {row['INCONCLUSIVE']} / {row['REAL']}"


def _frames(candidate: dict[str, Any]) -> str:
    return "frame" if candidate["length"] == 1 else str(candidate["length"])


def candidates_table(report: dict[str, Any]) -> list[str]:
    """One row per candidate: what it is, what it cost, validation AUC, and the fixed test split at video level."""
    lines = [
        "| candidate | backbone | crop | frames | best epoch | train time | validation AUC (clips) | test videos "
        "(real / fake) | test video AUC | test video accuracy | real: FAKE / INCONCLUSIVE / REAL "
        "| fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, run in report["candidates"].items():
        candidate, test = run["candidate"], run["test"]
        video = test["overall"]["video"]
        (tn, fp), (fn, tp) = video["confusion"]
        outcomes = test.get("outcomes", {})
        lines.append(
            f"| {key} | {candidate['backbone']} | {candidate['image_size']} | {_frames(candidate)} | "
            f"{run['best_epoch']} of {run['epochs_run']} | {run['train_seconds'] / 60:.0f} min | "
            f"{fmt(run['validation'].get('auc'))} | {tn + fp} / {fn + tp} | {fmt(video.get('auc'))} | "
            f"{fmt(video.get('accuracy'))} | {called(outcomes['REAL']) if outcomes else 'n/a'} | "
            f"{called(outcomes['FAKE']) if outcomes else 'n/a'} |"
        )
    return lines


def per_method_table(runs: dict[str, dict[str, Any]], title: str) -> list[str]:
    """Video AUC of each kind of fake against the test split's real videos, per run."""
    methods = sorted({method for run in runs.values() for method in run["test"].get("per_method", {})} - {"real"})
    lines = [f"| {title} | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for key, run in runs.items():
        per_method = run["test"].get("per_method", {})
        cells = [fmt(per_method.get(method, {}).get("video", {}).get("auc")) for method in methods]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def loso_table(report: dict[str, Any]) -> list[str]:
    lines = [
        f"| held out (candidate {report.get('loso_candidate', '?')}) | test videos (real / fake) | video AUC "
        "| video accuracy | real: FAKE / INCONCLUSIVE / REAL | fake: FAKE / INCONCLUSIVE / REAL "
        "| video Brier raw -> calibrated |",
        "|---|---|---|---|---|---|---|",
    ]
    for experiment, run in report["loso"].items():
        test = run["test"]
        video = test["overall"]["video"]
        (tn, fp), (fn, tp) = video["confusion"]
        outcomes = test.get("outcomes")
        raw = (test.get("raw_overall") or test["overall"])["video"].get("brier")
        lines.append(
            f"| {experiment.removeprefix('without_')} | {tn + fp} / {fn + tp} | {fmt(video.get('auc'))} | "
            f"{fmt(video.get('accuracy'))} | {called(outcomes['REAL']) if outcomes else 'n/a'} | "
            f"{called(outcomes['FAKE']) if outcomes else 'n/a'} | {fmt(raw)} -> {fmt(video.get('brier'))} |"
        )
    return lines


def calibration_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| candidate | calibration | REAL at or below | FAKE at or above | test video Brier raw -> calibrated "
        "| test video ECE raw -> calibrated |",
        "|---|---|---|---|---|---|",
    ]
    for key, run in report["candidates"].items():
        test = run["test"]
        if "thresholds" not in test:
            continue
        method = test.get("calibration", {}).get("method", "none") if test.get("calibrated") else "none"
        raw = (test.get("raw_overall") or test["overall"])["video"]
        video = test["overall"]["video"]
        lines.append(
            f"| {key} | {method} | {fmt(test['thresholds']['real'])} | {fmt(test['thresholds']['fake'])} | "
            f"{fmt(raw.get('brier'))} -> {fmt(video.get('brier'))} | {fmt(raw.get('ece'))} -> "
            f"{fmt(video.get('ece'))} |"
        )
    return lines


def ensemble_scores(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The app's ensemble (``ensemble.combine``) applied to the members' test reports: per video, the mean of their
    calibrated probabilities, called with their averaged thresholds and the disagreement rule; its AUC and calls."""
    from sklearn.metrics import roc_auc_score

    members = [{row["video_id"]: row for row in run["test"]["videos"]} for run in runs]
    thresholds = mean_thresholds(
        [Thresholds(r["test"]["thresholds"]["fake"], r["test"]["thresholds"]["real"]) for r in runs]
    )
    shared = sorted(set.intersection(*(set(member) for member in members)))
    labels, means = [], []
    outcomes: dict[str, dict[str, int]] = {
        truth: {"FAKE": 0, "INCONCLUSIVE": 0, "REAL": 0} for truth in ("REAL", "FAKE")
    }
    for video in shared:
        probabilities = [float(member[video]["fake_probability"]) for member in members]
        truth = members[0][video]["label"]
        labels.append(int(truth == "FAKE"))
        means.append(fmean(probabilities))
        outcomes[truth][person_verdict(probabilities, thresholds)[0]] += 1
    auc = roc_auc_score(labels, means) if 0 < sum(labels) < len(labels) else float("nan")
    return {"videos": len(shared), "auc": float(auc), "outcomes": outcomes, "thresholds": thresholds.to_dict()}


def ensemble_table(report: dict[str, Any]) -> list[str]:
    """The shipped lengths' ensemble on the fixed test split, beside its members (empty with fewer than two)."""
    runs = [
        run for run in report["candidates"].values() if run["candidate"]["length"] > 1 and "thresholds" in run["test"]
    ]
    if len(runs) < 2:
        return []
    combined = ensemble_scores(runs)
    lengths = " + ".join(_frames(run["candidate"]) for run in runs)
    return [
        "| ensemble (mean of calibrated probabilities) | test videos | video AUC | FAKE at or above | REAL at or below "
        "| real: FAKE / INCONCLUSIVE / REAL | fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|",
        f"| {lengths} frames | {combined['videos']} | {fmt(combined['auc'])} | {fmt(combined['thresholds']['fake'])} | "
        f"{fmt(combined['thresholds']['real'])} | {called(combined['outcomes']['REAL'])} | "
        f"{called(combined['outcomes']['FAKE'])} |",
    ]


def card_tables(report: dict[str, Any]) -> str:
    chosen = report.get("chosen_backbone", {})
    parts = [
        "Candidates, fixed test split (video level):",
        "",
        *candidates_table(report),
        "",
        f"Chosen: {chosen.get('backbone')} at {chosen.get('image_size')} px (by validation AUC; a costlier candidate "
        f"must beat every cheaper one by more than {CHOICE_MARGIN} and fit the training budget).",
        "",
        f"Frame models also trained on {report['photos']} FFHQ photos and their self-blended fakes."
        if report.get("photos")
        else "No photos in training (--photos 0).",
        "",
        "Per kind of fake, fixed test split (video AUC against the test split's real videos):",
        "",
        *per_method_table(report["candidates"], "candidate"),
        "",
        "Calibration (fitted on the validation split; thresholds from the verdict rule):",
        "",
        *calibration_table(report),
    ]
    if ensemble := ensemble_table(report):
        parts += [
            "",
            "The sequence models as the app's ensemble of every shipped length, fixed test split:",
            "",
            *ensemble,
        ]
    if report.get("loso"):
        parts += [
            "",
            "Leave one source out (trained without the source, tested on all of its videos):",
            "",
            *loso_table(report),
            "",
            *per_method_table(report["loso"], "held out"),
        ]
    return "\n".join(parts)
