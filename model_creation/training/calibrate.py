"""Fitting a checkpoint's calibration and its two thresholds on validation clips, with scikit-learn.

Calibration acts on clip scores (one face followed through one window: what the network scores), so every level
above it (window, person, video) is built from calibrated probabilities by the app's own rule. The thresholds are
chosen on the validation *videos*, scored by that rule:

* FAKE threshold: the lowest at which at most ``max_fpr`` of the real videos would be called FAKE, and never below
  0.5 + ``min_margin`` (the app never calls FAKE what it thinks about as likely real);
* REAL threshold: the highest at which at most ``max_miss`` of the fake videos would be called REAL, never above
  0.5 - ``min_margin``.

The margin keeps a band of INCONCLUSIVE around 0.5 whatever a small validation set says: with a handful of real
videos a 5 % false-positive rate cannot be observed at all, and the record says so (``threshold_rule.verifiable``).

Methods: ``temperature`` (one parameter on the log-odds; keeps 0.5 where it is), ``platt`` (logistic regression on
the log-odds: moves 0.5 too), ``isotonic`` (a monotone step curve; needs many clips of each class). ``auto`` picks
isotonic from ``ISOTONIC_MIN_PER_CLASS`` clips of each class, else Platt.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from ml_app.detection.calibration import Calibration, Thresholds, logit, sigmoid

from .config import TrainConfig
from .dataset import ClipItem
from .evaluate import calibration_figures, is_fake, level_scores, outcome_counts
from .metrics import json_safe

ISOTONIC_MIN_PER_CLASS = 200
MAX_FPR, MAX_MISS, MIN_MARGIN = TrainConfig.max_fpr, TrainConfig.max_miss, TrainConfig.min_margin


class CalibrationError(ValueError):
    """The data cannot support a calibration (one class only, no clips)."""


def choose_method(labels: np.ndarray, method: str) -> str:
    counts = Counter(labels.tolist())
    if min(counts.get(0, 0), counts.get(1, 0)) == 0:
        raise CalibrationError(
            f"calibration needs REAL and FAKE validation clips; there are {counts.get(0, 0)} REAL and "
            f"{counts.get(1, 0)} FAKE (add fakes, or --synthesize-fakes sbi)"
        )
    if method != "auto":
        return method
    return "isotonic" if min(counts.values()) >= ISOTONIC_MIN_PER_CLASS else "platt"


def fit_parameters(labels: np.ndarray, scores: np.ndarray, method: str) -> dict[str, Any]:
    """The parameters of ``method`` fitted to raw fake scores and their 0/1 labels."""
    if method == "temperature":

        def loss(log_t: float) -> float:
            p = np.clip(sigmoid(logit(scores) / math.exp(log_t)), 1e-12, 1 - 1e-12)
            return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))

        found = minimize_scalar(loss, bounds=(math.log(0.02), math.log(50.0)), method="bounded")
        return {"temperature": float(math.exp(found.x))}
    if method == "platt":
        model = LogisticRegression(C=1.0).fit(logit(scores).reshape(-1, 1), labels)
        return {"slope": float(model.coef_[0, 0]), "intercept": float(model.intercept_[0])}
    if method == "isotonic":
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
        return {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()}
    raise CalibrationError(f"unknown calibration method {method!r}")


def fake_threshold(real_video_scores: Sequence[float], max_fpr: float = MAX_FPR, min_margin: float = 0.0) -> float:
    """The lowest threshold calling at most ``max_fpr`` of these real videos FAKE (FAKE means at or above it)."""
    ordered = np.sort(np.asarray(real_video_scores, dtype=np.float64))[::-1]
    allowed = math.floor(max_fpr * ordered.size + 1e-9)
    threshold = 0.5 if allowed >= ordered.size else float(np.nextafter(ordered[allowed], np.inf))
    return min(max(threshold, 0.5 + min_margin), 1.0)


def real_threshold(fake_video_scores: Sequence[float], max_miss: float = MAX_MISS, min_margin: float = 0.0) -> float:
    """The highest threshold calling at most ``max_miss`` of these fake videos REAL (REAL means at or below it)."""
    ordered = np.sort(np.asarray(fake_video_scores, dtype=np.float64))
    allowed = math.floor(max_miss * ordered.size + 1e-9)
    threshold = 0.5 if allowed >= ordered.size else float(np.nextafter(ordered[allowed], -np.inf))
    return max(min(threshold, 0.5 - min_margin), 0.0)


def threshold_rule(max_fpr: float, max_miss: float, min_margin: float, reals: int, fakes: int) -> dict[str, Any]:
    """The rule the thresholds follow, and whether this many validation videos can show the rates at all (one video
    in ``1 / rate`` is the smallest share a set can observe)."""
    verifiable = reals >= math.ceil(1 / max_fpr - 1e-9) if max_fpr else False
    verifiable = verifiable and (fakes >= math.ceil(1 / max_miss - 1e-9) if max_miss else False)
    rule: dict[str, Any] = {
        "level": "video",
        "max_fpr": max_fpr,
        "max_miss": max_miss,
        "min_margin": min_margin,
        "verifiable": verifiable,
    }
    if not verifiable:
        rule["note"] = (
            f"{reals} real and {fakes} fake validation videos cannot show a {max_fpr:.0%} false-positive or a "
            f"{max_miss:.0%} miss rate; the thresholds rest on the margin of {min_margin} around 0.5 as much as on "
            "the data"
        )
    return rule


def fit_calibration(
    items: Sequence[ClipItem],
    raw_scores: Sequence[float] | np.ndarray,
    method: str = "auto",
    max_fpr: float = MAX_FPR,
    max_miss: float = MAX_MISS,
    source: dict[str, Any] | None = None,
    min_margin: float = MIN_MARGIN,
) -> Calibration:
    """Calibration and thresholds fitted on ``items`` (validation clips) and their raw scores, with the record of
    what they were fitted on and how the raw and calibrated scores compare there."""
    if not items:
        raise CalibrationError("calibration needs validation clips; there are none")
    labels = np.array([is_fake(item.video.label) for item in items], dtype=np.int64)
    raw = np.asarray(raw_scores, dtype=np.float64)
    chosen = choose_method(labels, method)
    parameters = fit_parameters(labels, raw, chosen)
    provisional = Calibration(chosen, parameters, Thresholds(0.5, 0.5))
    calibrated = provisional.apply(raw)
    videos = level_scores(items, calibrated.tolist(), "video")
    real_scores = [score for _, label, score in videos if not label]
    fake_scores = [score for _, label, score in videos if label]
    thresholds = Thresholds(
        fake_threshold(real_scores, max_fpr, min_margin) if real_scores else 0.5 + min_margin,
        real_threshold(fake_scores, max_miss, min_margin) if fake_scores else 0.5 - min_margin,
    )
    fitted_on = {
        **(source or {}),
        "clips": {"REAL": int((labels == 0).sum()), "FAKE": int(labels.sum())},
        "videos": {"REAL": len(real_scores), "FAKE": len(fake_scores)},
        "methods": dict(Counter(item.video.method or "" for item in items if item.video.label == "FAKE")),
        "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "threshold_rule": threshold_rule(max_fpr, max_miss, min_margin, len(real_scores), len(fake_scores)),
        # the data itself: (video id, window, track, label, raw score) per clip
        "scores": [
            [item.video.video_id, item.clip.window, item.clip.track, int(label), round(float(score), 6)]
            for item, label, score in zip(items, labels, raw, strict=True)
        ],
    }
    metrics: dict[str, Any] = {
        level: {
            "raw": calibration_figures(items, raw.tolist(), level),
            "calibrated": calibration_figures(items, calibrated.tolist(), level),
        }
        for level in ("clip", "video")
    }
    metrics["outcomes"] = outcome_counts(items, calibrated.tolist(), thresholds)
    return Calibration(chosen, parameters, thresholds, fitted_on, json_safe(metrics))


def describe_calibration(calibration: Calibration) -> str:
    """One paragraph for a command's output."""
    metrics, on = calibration.metrics, calibration.fitted_on
    clip = metrics.get("clip", {})
    raw, cal = clip.get("raw", {}), clip.get("calibrated", {})
    outcomes = metrics.get("outcomes", {})

    def number(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) and math.isfinite(value) else "n/a"

    return (
        f"Calibration ({calibration.method}) fitted on {on.get('clips', {}).get('REAL', 0)} REAL and "
        f"{on.get('clips', {}).get('FAKE', 0)} FAKE validation clips: Brier {number(raw.get('brier'))} -> "
        f"{number(cal.get('brier'))}, ECE {number(raw.get('ece'))} -> {number(cal.get('ece'))}. Thresholds: FAKE at "
        f"or above {calibration.thresholds.fake:.3f}, REAL at or below {calibration.thresholds.real:.3f}; on the "
        f"validation videos: real {outcomes.get('REAL')}, fake {outcomes.get('FAKE')}."
        + (f" Note: {on['threshold_rule']['note']}." if on.get("threshold_rule", {}).get("note") else "")
    )


def calibrate_checkpoint_file(
    path: Path,
    items: Sequence[ClipItem],
    raw_scores: Sequence[float] | np.ndarray,
    method: str = "auto",
    max_fpr: float = MAX_FPR,
    max_miss: float = MAX_MISS,
    source: dict[str, Any] | None = None,
    target: Path | None = None,
    min_margin: float = MIN_MARGIN,
) -> Calibration:
    """Fit on ``items`` and their raw scores and store the calibration in the checkpoint at ``path`` (or a copy at
    ``target``), keeping the file's weight precision. Returns the calibration."""
    from ml_app.detection.checkpoints import checkpoint_from_payload, read_checkpoint_file, save_checkpoint

    calibration = fit_calibration(items, raw_scores, method, max_fpr, max_miss, source, min_margin)
    payload, _ = read_checkpoint_file(path)  # read once; the weights are written back as they are
    checkpoint = checkpoint_from_payload(payload, path.name)
    half = payload.get("weights_dtype") == "float16"
    checkpoint.calibration = calibration
    save_checkpoint(checkpoint, target or path, half=half)
    return calibration
