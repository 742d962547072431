"""What the default-model recipe reads back from a finished run's files: its figures for the card, the held-out
AUCs against real manipulations and self-blended copies apart, and medians of one class's scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from model_creation.training.default_recipe import Candidate


def train_seconds(run_dir: Path) -> float:
    with open(run_dir / "history.csv", newline="") as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def clip_median(items: list, raw: np.ndarray, label: str) -> float | None:
    from model_creation.training.out_of_fold import is_self_blended

    values = [s for item, s in zip(items, raw, strict=True) if item.video.label == label and not is_self_blended(item)]
    return float(np.median(values)) if values else None


def report_medians(report: dict[str, Any], label: str) -> dict[str, Any]:
    """Median raw and calibrated clip score of one class in an evaluate_model report (its ``clip_scores``)."""
    table = report.get("clip_scores") or {"columns": [], "rows": []}
    column = {name: index for index, name in enumerate(table["columns"])}
    rows = [row for row in table["rows"] if row[column["label"]] == label]
    if not rows:
        return {}
    return {
        "clips": len(rows),
        "raw": float(np.median([row[column["raw"]] for row in rows])),
        "calibrated": float(np.median([row[column["calibrated"]] for row in rows])),
    }


def run_summary(run_dir: Path, candidate: Candidate, experiment: str) -> dict[str, Any]:
    """What the card states of one run, read back from its files."""
    import torch

    from model_creation.training.out_of_fold import score_files, scores_of
    from model_creation.training.validation_scores import VALIDATION_SCORES

    with open(run_dir / "history.csv", newline="") as handle:
        epochs = list(csv.DictReader(handle))
    payload = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True, mmap=True)
    calibration = payload.get("calibration") or {}
    held_out: dict[str, Any] = {"auc": float("nan")}
    if (run_dir / VALIDATION_SCORES).is_file() and json.loads((run_dir / VALIDATION_SCORES).read_text())["rows"]:
        held_out = _held_out_figures(*scores_of(score_files([run_dir])))
    return {
        "run_dir": str(run_dir),
        "candidate": candidate.to_dict(),
        "experiment": experiment,
        "epochs_run": len(epochs),
        "train_seconds": sum(float(row["seconds"]) for row in epochs),
        "held_out": held_out,
        "calibration": {
            "thresholds": calibration.get("thresholds"),
            "fitted_on": {k: v for k, v in (calibration.get("fitted_on") or {}).items() if k != "scores"},
            "metrics": calibration.get("metrics"),
        },
        "photo_draw": (payload.get("training") or {}).get("photo_draw"),
        "precision": (payload.get("training") or {}).get("precision"),
        "test": json.loads((run_dir / "test" / "report.json").read_text()),
    }


def _held_out_figures(items: list, raw: np.ndarray) -> dict[str, Any]:
    """Video AUC of held-out real videos against held-out real manipulations (self-blended copies left out), and
    against the self-blended copies apart."""
    from model_creation.training.evaluate import level_scores
    from model_creation.training.metrics import roc_auc
    from model_creation.training.out_of_fold import is_self_blended

    def auc(chosen: list[int]) -> float:
        rows = level_scores([items[i] for i in chosen], raw[chosen].tolist(), "video")
        return roc_auc([label for _, label, _ in rows], [score for _, _, score in rows])

    real = [i for i, item in enumerate(items) if item.video.label == "REAL"]
    manipulated = [i for i, item in enumerate(items) if item.video.label == "FAKE" and not is_self_blended(item)]
    blended = [i for i, item in enumerate(items) if is_self_blended(item)]
    videos = {item.video.video_id for item in items}
    return {"auc": auc(real + manipulated), "self_blended_auc": auc(real + blended), "videos": len(videos)}
