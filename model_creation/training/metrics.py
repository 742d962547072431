"""Binary classification metrics (FAKE is the positive class), computed by scikit-learn.

Conventions kept on top of scikit-learn: a score is the fake probability; a sample is predicted FAKE when its score is
at least the threshold (as the app decides). Precision is 0 when nothing is predicted FAKE, recall 0 when there is no
FAKE sample, and AUC, EER, log loss and the Brier score are NaN when they are undefined (one class only, or no sample):
undefined values are never made up. The equal error rate, the expected calibration error and the reliability table
are the only figures scikit-learn does not give; they are derived from its ROC curve and its calibration bins.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

RELIABILITY_BINS = 10


def _arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (REAL) or 1 (FAKE)")
    return y, s


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def confusion_matrix(labels, scores, threshold: float = 0.5) -> np.ndarray:
    """``[[TN, FP], [FN, TP]]``: rows are the truth (REAL, FAKE), columns the prediction."""
    y, s = _arrays(labels, scores)
    return sk.confusion_matrix(y, (s >= threshold).astype(np.int64), labels=[0, 1])


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score taken as threshold, from (0, 0) to (1, 1).

    Tied scores move the curve diagonally, which is what makes the trapezoid area equal the rank statistic. NaN arrays
    when only one class is present.
    """
    y, s = _arrays(labels, scores)
    if not _both_classes(y):
        nan = np.array([math.nan])
        return nan, nan, nan
    fpr, tpr, thresholds = sk.roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thresholds


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve; the chance that a FAKE outscores a REAL, ties counting half."""
    y, s = _arrays(labels, scores)
    return float(sk.roc_auc_score(y, s)) if _both_classes(y) else math.nan


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
    return float(sk.log_loss(y, np.clip(s, eps, 1 - eps), labels=[0, 1]))


def brier_score(labels, scores) -> float:
    """Mean squared difference between the fake probability and the truth (0 best, 0.25 for a constant 0.5)."""
    y, s = _arrays(labels, scores)
    return float(sk.brier_score_loss(y, s, pos_label=1)) if y.size else math.nan


def reliability(labels, scores, bins: int = RELIABILITY_BINS) -> list[dict[str, float]]:
    """Per equal-width probability bin with samples: mean predicted probability, observed fake rate and count.

    The bins are scikit-learn's ``calibration_curve`` bins (uniform strategy); the count per bin is what the curve
    leaves out and the calibration error needs.
    """
    y, s = _arrays(labels, scores)
    if not y.size:
        return []
    observed, predicted = calibration_curve(y, s, n_bins=bins, strategy="uniform", pos_label=1)
    counts = np.bincount(np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], s), minlength=bins)
    counts = counts[counts > 0]
    return [
        {"predicted": float(p), "observed": float(o), "count": int(n)}
        for p, o, n in zip(predicted, observed, counts, strict=True)
    ]


def expected_calibration_error(labels, scores, bins: int = RELIABILITY_BINS) -> float:
    """The count-weighted mean gap between predicted probability and observed fake rate over the reliability bins."""
    table = reliability(labels, scores, bins)
    total = sum(row["count"] for row in table)
    if not total:
        return math.nan
    return float(sum(row["count"] * abs(row["predicted"] - row["observed"]) for row in table) / total)


def binary_metrics(labels, scores, threshold: float = 0.5) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC, EER, log loss, Brier score, calibration error and the confusion
    matrix, as plain JSON values."""
    y, s = _arrays(labels, scores)
    predicted = (s >= threshold).astype(np.int64)
    (tn, fp), (fn, tp) = confusion_matrix(y, s, threshold).tolist()
    n = int(y.size)
    precision, recall, f1 = (0.0, 0.0, 0.0)
    if n:
        precision, recall, f1, _ = (
            float(value[0]) for value in sk.precision_recall_fscore_support(y, predicted, labels=[1], zero_division=0.0)
        )
    rate, eer_threshold = equal_error_rate(y, s)
    return {
        "n": n,
        "fake": int(y.sum()),
        "real": n - int(y.sum()),
        "threshold": threshold,
        "accuracy": float(sk.accuracy_score(y, predicted)) if n else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(y, s),
        "eer": rate,
        "eer_threshold": eer_threshold,
        "log_loss": log_loss(y, s),
        "brier": brier_score(y, s),
        "ece": expected_calibration_error(y, s),
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
