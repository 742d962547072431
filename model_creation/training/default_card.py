"""The model card's tables for recipe 2, from ``build_default_model``'s report (``build.json``).

Every figure the card quotes is printed here from the evaluation reports, so the card and the rebuild agree:
the candidates on the fixed test split, the leave-one-source-out experiments, and how the test videos are called
with each model's calibration and thresholds.
"""

from __future__ import annotations

import math
from typing import Any

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


def card_tables(report: dict[str, Any]) -> str:
    chosen = report.get("chosen_backbone", {})
    parts = [
        "Candidates, fixed test split (video level):",
        "",
        *candidates_table(report),
        "",
        f"Chosen by validation AUC: {chosen.get('backbone')} at {chosen.get('image_size')} px.",
        "",
        "Per kind of fake, fixed test split (video AUC against the test split's real videos):",
        "",
        *per_method_table(report["candidates"], "candidate"),
        "",
        "Calibration (fitted on the validation split; thresholds from the verdict rule):",
        "",
        *calibration_table(report),
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
