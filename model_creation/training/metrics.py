"""Binary classification metrics in numpy (FAKE is the positive class), small enough to check by hand.

Conventions: a score is the fake probability; a sample is predicted FAKE when its score is at least the threshold
(as the app decides). Precision is 0 when nothing is predicted FAKE, recall 0 when there is no FAKE sample, and AUC
and EER are NaN when only one class is present: undefined values are never made up.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (REAL) or 1 (FAKE)")
    return y, s


def confusion_matrix(labels, scores, threshold: float = 0.5) -> np.ndarray:
    """``[[TN, FP], [FN, TP]]``: rows are the truth (REAL, FAKE), columns the prediction."""
    y, s = _arrays(labels, scores)
    predicted = s >= threshold
    return np.array(
        [
            [int(np.sum((y == 0) & ~predicted)), int(np.sum((y == 0) & predicted))],
            [int(np.sum((y == 1) & ~predicted)), int(np.sum((y == 1) & predicted))],
        ]
    )


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score taken as threshold, from (0, 0) to (1, 1).

    Tied scores move the curve diagonally, which is what makes the trapezoid area equal the rank statistic.
    """
    y, s = _arrays(labels, scores)
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    if positives == 0 or negatives == 0:
        nan = np.array([math.nan])
        return nan, nan, nan
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s_sorted))[0], y.size - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (trapezoids); the chance that a FAKE outscores a REAL, ties counting half."""
    fpr, tpr, _ = roc_curve(labels, scores)
    if np.isnan(fpr).any():
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def equal_error_rate(labels, scores) -> tuple[float, float]:
    """(EER, threshold): where the false positive rate equals the false negative rate, interpolated on the ROC."""
    fpr, tpr, thresholds = roc_curve(labels, scores)
    if np.isnan(fpr).any():
        return math.nan, math.nan
    fnr = 1.0 - tpr
    difference = fnr - fpr  # starts at 1 (threshold inf), ends at -1 (lowest threshold)
    crossing = int(np.nonzero(difference <= 0)[0][0])
    if difference[crossing] == 0 or crossing == 0:
        threshold = thresholds[crossing]
        return float(fpr[crossing]), float(threshold if np.isfinite(threshold) else 1.0)
    before = crossing - 1
    t = difference[before] / (difference[before] - difference[crossing])
    rate = fpr[before] + t * (fpr[crossing] - fpr[before])
    high = thresholds[before] if np.isfinite(thresholds[before]) else 1.0
    threshold = high + t * (thresholds[crossing] - high)
    return float(rate), float(threshold)


def log_loss(labels, scores, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to [eps, 1 - eps]."""
    y, s = _arrays(labels, scores)
    if not y.size:
        return math.nan
    p = np.clip(s, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def binary_metrics(labels, scores, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC, EER, log loss and the confusion matrix, as plain JSON values."""
    y, s = _arrays(labels, scores)
    (tn, fp), (fn, tp) = confusion_matrix(y, s, threshold).tolist()
    n = int(y.size)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    rate, eer_threshold = equal_error_rate(y, s)
    return {
        "n": n,
        "fake": int(y.sum()),
        "real": n - int(y.sum()),
        "threshold": threshold,
        "accuracy": (tp + tn) / n if n else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(y, s),
        "eer": rate,
        "eer_threshold": eer_threshold,
        "log_loss": log_loss(y, s),
        "confusion": [[tn, fp], [fn, tp]],
    }


def json_safe(value: Any) -> Any:
    """NaN and infinity become None so that the report is valid JSON."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
