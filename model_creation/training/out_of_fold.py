"""Calibration and thresholds fitted on every video outside the test split, each scored by a model that never saw it.

Cross-validation by group (``train_model --folds K --monitor none``) leaves, per fold, the raw scores of its
validation clips at the last epoch (``validation_scores.json``): together an out-of-fold score for every non-test
video. On those:

* **calibration** (Platt scaling of the clip scores' log-odds) is fitted at the level a user sees, the video: the
  clip probabilities are combined by the app's own rule (:func:`.evaluate.level_scores`) and the two parameters
  minimise the videos' log loss with **both classes weighted equally**. The probability therefore assumes a 50/50
  prior: "if half of the videos checked were fake, this share of videos scored like this one would be";
* **thresholds** are chosen on the calibrated video probabilities of real videos and **real manipulations** only:
  FAKE where at most ``max_fpr`` of the real videos would be called FAKE, REAL where at most ``max_miss`` of the fakes
  would be called REAL, each kept ``min_margin`` from 0.5;
* self-blended copies (fakes made from the real videos for training) are kept out of both and reported apart.

The result is an ordinary :class:`~ml_app.detection.calibration.Calibration`, stored in the final model trained on
every non-test video, whose ``fitted_on`` says all of this in words.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from ml_app.detection.calibration import Calibration, Thresholds, logit, sigmoid

from .calibrate import MAX_FPR, MAX_MISS, MIN_MARGIN, fake_threshold, real_threshold, threshold_rule
from .dataset import SELF_BLENDED, ClipItem
from .evaluate import calibration_figures, decision_figures, level_scores, outcome_counts
from .metrics import json_safe
from .validation_scores import VALIDATION_SCORES, read_validation_scores

PRIOR = 0.5
MEANING = (
    "the probability that the video is fake, for a video like those the model was calibrated on, if before looking a "
    "fake and a real video were equally likely (a 50/50 prior): where fakes are rarer, the same score means less"
)


def is_self_blended(item: ClipItem) -> bool:
    return item.video.method == SELF_BLENDED or item.video.video_id.endswith("#sbi")


def score_files(paths: Sequence[Path]) -> list[Path]:
    """The ``validation_scores.json`` files that ``paths`` name: files as they are; a folder's own file, or a
    cross-validation folder's ``fold_*/`` files. ValueError when a path holds none."""
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif (path / VALIDATION_SCORES).is_file():
            files.append(path / VALIDATION_SCORES)
        elif found := sorted(path.glob(f"fold_*/{VALIDATION_SCORES}")):
            files += found
        else:
            raise ValueError(
                f"'{path}' holds no {VALIDATION_SCORES} (train_model writes one beside best.pt; a cross-validation "
                "folder holds one per fold)."
            )
    return files


def scores_of(files: Sequence[Path]) -> tuple[list[ClipItem], np.ndarray]:
    """Every file's clips and raw scores, pooled; a video may be scored by one file only (one fold each)."""
    items: list[ClipItem] = []
    scores: list[np.ndarray] = []
    seen: set[str] = set()
    for path in files:
        found, raw = read_validation_scores(path)
        videos = {item.video.video_id for item in found}
        if videos & seen:
            raise ValueError(f"'{path}' scores videos another file scored too: {', '.join(sorted(videos & seen)[:3])}")
        seen |= videos
        items += found
        scores.append(raw)
    return items, np.concatenate(scores) if scores else np.zeros(0)


def _video_rows(items: Sequence[ClipItem], probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = level_scores(items, probabilities.tolist(), "video")
    return np.array([label for _, label, _ in rows]), np.array([score for _, _, score in rows])


def balanced_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean log loss of each class, averaged: both classes weigh the same however many videos each has."""
    p = np.clip(probabilities, 1e-9, 1 - 1e-9)
    losses = [float(np.mean(-np.log(p[labels == 1]))), float(np.mean(-np.log(1 - p[labels == 0])))]
    return float(np.mean(losses))


def fit_video_platt(items: Sequence[ClipItem], raw: np.ndarray) -> dict[str, float]:
    """Platt parameters (slope, intercept on the clip score's log-odds) that minimise the balanced log loss of the
    videos' probabilities as the app combines them. The slope stays in (0.05, 20]: a handful of perfectly separated
    videos would otherwise push it to infinity."""
    log_odds = logit(raw)
    labels, _ = _video_rows(items, raw)
    if len(set(labels.tolist())) < 2:
        raise ValueError("calibration needs real and fake videos")

    def loss(parameters: np.ndarray) -> float:
        slope, intercept = parameters
        _, videos = _video_rows(items, sigmoid(slope * log_odds + intercept))
        return balanced_log_loss(labels, videos)

    found = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.05, 20.0), (-20.0, 20.0)])
    return {"slope": float(found.x[0]), "intercept": float(found.x[1])}


def _outcome_table(items: Sequence[ClipItem], probabilities: np.ndarray, thresholds: Thresholds) -> dict[str, Any]:
    outcomes = outcome_counts(items, probabilities.tolist(), thresholds)
    return {"outcomes": outcomes, **decision_figures(outcomes)}


def calibrate_out_of_fold(
    items: Sequence[ClipItem],
    raw: np.ndarray,
    max_fpr: float = MAX_FPR,
    max_miss: float = MAX_MISS,
    min_margin: float = MIN_MARGIN,
    source: dict[str, Any] | None = None,
) -> Calibration:
    """The calibration and thresholds of the out-of-fold scores (self-blended copies kept out, reported apart)."""
    keep = np.array([not is_self_blended(item) for item in items])
    real_items = [item for item, kept in zip(items, keep, strict=True) if kept]
    real_raw = raw[keep]
    parameters = fit_video_platt(real_items, real_raw)
    calibration = Calibration("platt", parameters, Thresholds(0.5, 0.5))
    calibrated = calibration.apply(real_raw)
    labels, videos = _video_rows(real_items, calibrated)
    thresholds = Thresholds(
        fake_threshold(videos[labels == 0], max_fpr, min_margin),
        real_threshold(videos[labels == 1], max_miss, min_margin),
    )
    reals, fakes = int((labels == 0).sum()), int((labels == 1).sum())
    fitted_on = {
        "split": "out of fold",
        **(source or {}),
        "level": "video",
        "prior": {"fake": PRIOR, "meaning": MEANING},
        "videos": {"REAL": reals, "FAKE": fakes},
        "clips": {label: sum(1 for i in real_items if i.video.label == label) for label in ("REAL", "FAKE")},
        "methods": _methods(real_items),
        "excluded": {"self-blended videos": len({i.video.video_id for i in items if is_self_blended(i)})},
        "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "threshold_rule": {
            **threshold_rule(max_fpr, max_miss, min_margin, reals, fakes),
            "fakes": "real manipulations only",
        },
    }
    metrics: dict[str, Any] = {
        "video": {
            "raw": calibration_figures(real_items, real_raw.tolist(), "video"),
            "calibrated": calibration_figures(real_items, calibrated.tolist(), "video"),
        },
        **_outcome_table(real_items, calibrated, thresholds),
        "self_blended": _self_blended_figures(items, raw, calibration, thresholds),
    }
    return Calibration("platt", parameters, thresholds, fitted_on, json_safe(metrics))


def _methods(items: Sequence[ClipItem]) -> dict[str, int]:
    videos = {item.video.video_id: item.video.method for item in items if item.video.label == "FAKE"}
    counts: dict[str, int] = {}
    for method in videos.values():
        counts[method or "unknown"] = counts.get(method or "unknown", 0) + 1
    return dict(sorted(counts.items()))


def _self_blended_figures(
    items: Sequence[ClipItem], raw: np.ndarray, calibration: Calibration, thresholds: Thresholds
) -> dict[str, Any]:
    """The self-blended copies against the real videos, apart: what the model does on the fakes it trained on."""
    chosen = [index for index, item in enumerate(items) if is_self_blended(item) or item.video.label == "REAL"]
    if not any(is_self_blended(items[index]) for index in chosen):
        return {}
    subset = [items[index] for index in chosen]
    calibrated = calibration.apply(raw[chosen])
    figures = calibration_figures(subset, calibrated.tolist(), "video")
    return {
        "auc": figures["auc"],
        "n": figures["n"],
        **_outcome_table(subset, calibrated, thresholds),
    }


def store_calibration(path: Path, calibration: Calibration, target: Path | None = None) -> Path:
    """Write ``calibration`` into the checkpoint at ``path`` (or a copy at ``target``), in its weights' precision."""
    from ml_app.detection.checkpoints import checkpoint_from_payload, read_checkpoint_file, save_checkpoint

    payload, _ = read_checkpoint_file(path)
    checkpoint = checkpoint_from_payload(payload, path.name)
    checkpoint.calibration = calibration
    save_checkpoint(checkpoint, target or path, half=payload.get("weights_dtype") == "float16")
    return target or path


def describe_out_of_fold(calibration: Calibration) -> str:
    """One paragraph for a command's output: what was fitted on what, the thresholds, decided and wrong."""
    on, metrics = calibration.fitted_on, calibration.metrics
    video = metrics.get("video", {})
    auc = video.get("calibrated", {}).get("auc")
    blended = metrics.get("self_blended", {})
    share = metrics.get("decided_share")
    wrong = metrics.get("wrong_among_decided")
    return (
        f"Calibration (Platt, video level, 50/50 prior) fitted on {on['videos']['REAL']} real and "
        f"{on['videos']['FAKE']} fake videos scored out of fold (AUC {_number(auc)}; self-blended copies left out: "
        f"{on['excluded']['self-blended videos']}, their AUC against the real videos {_number(blended.get('auc'))}). "
        f"Thresholds: FAKE at or above {calibration.thresholds.fake:.3f}, REAL at or below "
        f"{calibration.thresholds.real:.3f}; on these videos: real {metrics['outcomes']['REAL']}, fake "
        f"{metrics['outcomes']['FAKE']}; decided {_percent(share)}, wrong among the decided {_percent(wrong)}."
    )


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def _percent(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def median_probability(items: Sequence[ClipItem], probabilities: Sequence[float], label: str) -> float:
    """The median video probability of one class (what the card reports for real videos)."""
    rows = level_scores(items, list(probabilities), "video")
    values = [score for _, truth, score in rows if truth == int(label == "FAKE")]
    return float(np.median(values)) if values else math.nan
