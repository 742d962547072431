"""Which epoch is the best and when to stop: ``--monitor auc|f1|loss``, ``--min-delta`` and ``--patience``.

The monitored metric is the validation clips' (clip level): AUC and F1 are maximised, the log loss minimised;
``none`` chooses nothing on validation and keeps the last epoch (runs whose validation scores must stay out of
fold, and runs without a validation split). Scores
are kept "higher is better" (the loss negated), so one comparison serves all three. An epoch is better only when
it beats the best score by more than ``min_delta``; ``patience`` counts the epochs since the last such epoch. While
AUC or F1 is undefined (a validation split of one class) the loss stands in, as it always did for AUC.
"""

from __future__ import annotations

import math
from typing import Any

from .train_state import Progress

METRIC_KEYS = {"auc": "auc", "f1": "f1", "loss": "log_loss"}


def monitored_score(metrics: dict[str, Any], monitor: str) -> float:
    """The epoch's score for ``monitor``, higher is better."""
    if monitor != "loss":
        value = metrics.get(METRIC_KEYS[monitor])
        if value is not None and math.isfinite(value):
            return float(value)
    loss = metrics.get("log_loss")
    return -float(loss) if loss is not None and math.isfinite(loss) else -math.inf


def monitored_value(score: float, monitor: str) -> float:
    """A score back as the metric's own value (the loss positive again; with none, the epoch)."""
    return -score if monitor == "loss" else score


def is_better(score: float, best: float, min_delta: float = 0.0) -> bool:
    """Whether ``score`` improves on ``best`` by more than ``min_delta`` (both higher is better)."""
    return math.isfinite(score) and (not math.isfinite(best) or score > best + min_delta)


def record_epoch(progress: Progress, epoch: int, metrics: dict[str, Any], monitor: str, min_delta: float = 0.0) -> bool:
    """Update the best epoch and the epochs-without-improvement counter after ``epoch`` (1-based); True when it is
    the new best. With ``monitor`` none every epoch is (the last one is kept: nothing is chosen on validation)."""
    if monitor == "none":
        progress.best = {"epoch": epoch, "score": float(epoch), "metrics": metrics}
        progress.bad_epochs = 0
        return True
    score = monitored_score(metrics, monitor)
    if is_better(score, progress.best["score"], min_delta):
        progress.best = {"epoch": epoch, "score": score, "metrics": metrics}
        progress.bad_epochs = 0
        return True
    progress.bad_epochs += 1
    return False


def should_stop(progress: Progress, patience: int) -> bool:
    return progress.bad_epochs >= patience
