"""PNG plots for people: learning curves, ROC curves and a confusion matrix (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .metrics import roc_curve


def plot_curves(history: Sequence[dict], path: Path) -> Path:
    """Loss, accuracy and validation AUC per epoch."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    loss_axes.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
    accuracy_axes.plot(epochs, [row["train_accuracy"] for row in history], "o-", label="train accuracy")
    accuracy_axes.plot(epochs, [row["val_accuracy"] for row in history], "o-", label="validation accuracy")
    accuracy_axes.plot(epochs, [_finite(row["val_auc"]) for row in history], "s--", label="validation AUC")
    accuracy_axes.set(xlabel="epoch", ylim=(0, 1.02), title="Accuracy and AUC")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    return _save(figure, path)


def plot_roc(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: Path, title: str = "ROC") -> Path:
    """One ROC curve per named (labels, scores) pair, with its AUC in the legend."""
    from .metrics import roc_auc

    figure, axes = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        if np.isnan(fpr).any():
            continue
        axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(labels, scores):.3f})")
    axes.plot([0, 1], [0, 1], ":", color="grey")
    axes.set(xlabel="false positive rate (REAL called FAKE)", ylabel="true positive rate (FAKE caught)", title=title)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower right")
    return _save(figure, path)


def plot_reliability(figures: Mapping[str, Mapping], path: Path, title: str = "Reliability (validation clips)") -> Path:
    """Observed fake rate against mean predicted probability per bin, for each named set of figures (``raw``,
    ``calibrated``: what :func:`.calibrate.fit_calibration` and ``evaluate_model`` record), marker size by count."""
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for name, values in figures.items():
        table = values.get("reliability") or []
        if not table:
            continue
        brier, ece = values.get("brier"), values.get("ece")
        label = name + (f" (Brier {brier:.3f}, ECE {ece:.3f})" if brier is not None and ece is not None else "")
        axes.plot([row["predicted"] for row in table], [row["observed"] for row in table], "o-", label=label)
    axes.set(xlabel="predicted fake probability", ylabel="observed share of fakes", xlim=(0, 1), ylim=(0, 1))
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def plot_confusion(matrix: Sequence[Sequence[int]], path: Path, title: str = "Confusion matrix") -> Path:
    """Rows: truth (REAL, FAKE); columns: prediction."""
    values = np.asarray(matrix)
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.imshow(values, cmap="Blues")
    for (row, column), count in np.ndenumerate(values):
        colour = "white" if count > values.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour)
    axes.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["REAL", "FAKE"],
        yticklabels=["REAL", "FAKE"],
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    return _save(figure, path)


def _finite(value: float | None) -> float:
    return math.nan if value is None else value


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
