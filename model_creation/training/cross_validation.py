"""Cross-validation (``train_model --folds K``): K ordinary runs in OUTPUT/fold_1 .. fold_K and their report.

Fold k validates on the k-th fold of groups (:mod:`.folds`) and trains on the others; each is an ordinary run with
its own ``best.pt``, ``train_state.pt`` (``--resume`` continues the folds where they stopped) and calibration. The
plan (the settings, the folds' validation clips) is written to ``OUTPUT/cross_validation.json`` before fold 1;
the report (each fold's video-level validation metrics at its best epoch, their mean and standard deviation, and
the ensemble of the K ``best.pt`` files) replaces it at the end.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .config import TrainConfig, TrainError, TrainResult
from .folds import FoldError, assign_folds, fold_table
from .manifest import load_manifest
from .metrics import json_safe

REPORT_FILE = "cross_validation.json"
# The video-level validation metrics reported per fold, with the words for them.
REPORTED = {"video_auc": "AUC", "video_accuracy": "accuracy", "video_f1": "F1", "video_eer": "EER"}


def fold_folder(output: Path, fold: int) -> Path:
    return output / f"fold_{fold}"


def plan_folds(config: TrainConfig) -> dict[int, dict[str, int]]:
    """Validation clips per label of every fold; TrainError when the folds cannot be made or a fold would train
    without one of the classes. Warns nothing: a fold validated on one class only is noted in the table."""
    try:
        manifest = load_manifest(config.manifest)
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    videos = [video for video in manifest.videos if video.status == "ok" and video.clips]
    try:
        fold_of = assign_folds(videos, config.folds, config.seed)
    except FoldError as exc:
        raise TrainError(str(exc)) from exc
    table = fold_table(videos, fold_of, config.folds)
    labels = {label for counts in table.values() for label in counts}
    for fold in table:
        training = {label for other, counts in table.items() if other != fold for label in counts}
        if training != labels:
            missing = ", ".join(sorted(labels - training))
            raise TrainError(
                f"Fold {fold} would train without {missing} clips (all of them are in its validation fold): use "
                "fewer folds, or more groups of that class."
            )
    return table


def fold_configs(config: TrainConfig) -> list[TrainConfig]:
    """One ordinary run per fold, in OUTPUT/fold_k, named NAME_fold_k."""
    output = Path(config.output)
    return [
        replace(config, output=str(fold_folder(output, k)), fold=k, name=f"{config.name}_fold_{k}")
        for k in range(1, config.folds + 1)
    ]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(data), indent=2))


def write_plan(config: TrainConfig, table: dict[int, dict[str, int]]) -> None:
    plan = {"status": "running", "folds": config.folds, "config": config.to_dict(), "validation_clips": table}
    write_json(Path(config.output) / REPORT_FILE, plan)


def read_plan(output: Path) -> dict[str, Any] | None:
    path = output / REPORT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _mean_std(values: list[Any]) -> dict[str, Any]:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return {"mean": None, "std": None, "folds": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std, "folds": len(finite)}


def report(config: TrainConfig, results: list[TrainResult], ensemble: str = "") -> dict[str, Any]:
    """Each fold's video-level validation metrics at its best epoch, their mean and sample standard deviation
    (n - 1; over the folds where the metric is defined), and the ensemble entry of the folds' best.pt files."""
    folds: list[dict[str, Any]] = []
    for number, result in enumerate(results, start=1):
        metrics = result.best_metrics or {}
        folds.append(
            {
                "fold": number,
                "output": str(result.output),
                "best_pt": str(result.best_path) if result.best_path else None,
                "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early,
                "videos": metrics.get("videos"),
                **{key: metrics.get(key) for key in REPORTED},
            }
        )
    summary = {key: _mean_std([fold[key] for fold in folds]) for key in REPORTED}
    files = [str(fold["best_pt"]) for fold in folds if fold["best_pt"]]
    data: dict[str, Any] = {
        "status": "done",
        "folds": config.folds,
        "monitor": config.monitor,
        "level": "video",
        "per_fold": folds,
        "summary": summary,
        "config": config.to_dict(),
    }
    if ensemble:
        data["ensemble"] = {"name": ensemble, "files": files, "model_mapping": ensemble_mapping(ensemble, files)}
    return data


def ensemble_mapping(name: str, files: list[str]) -> dict[str, list[str]]:
    """The MODEL_MAPPING entry that offers the files as one ensemble (``model_mapping.split_mapping``)."""
    return {name: [str(Path(file).resolve()) for file in files]}


def _shown(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) and math.isfinite(value) else "n/a"


def describe(data: dict[str, Any]) -> str:
    """The report as a table: one line per fold, then mean ± standard deviation."""
    names = list(REPORTED.values())
    lines = ["Cross-validation, video level (validation, best epoch): " + ", ".join(names)]
    for fold in data["per_fold"]:
        values = "  ".join(f"{REPORTED[key]} {_shown(fold[key])}" for key in REPORTED)
        lines.append(f"  fold {fold['fold']} (best epoch {fold['best_epoch']}): {values}")
    summary = data["summary"]
    values = "  ".join(
        f"{REPORTED[key]} {_shown(summary[key]['mean'])} ± {_shown(summary[key]['std'])}" for key in REPORTED
    )
    lines.append(f"  mean ± std: {values}")
    return "\n".join(lines)
