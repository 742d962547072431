"""Per-epoch records to a CSV file and to TensorBoard (``tensorboard --logdir OUTPUT/tensorboard``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

HISTORY_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_auc",
    "val_eer",
    "val_video_auc",
    "val_video_accuracy",
    "seconds",
)


class EpochLog:
    """Writes each epoch's numbers as it ends; a resumed run rewrites the CSV from the restored history."""

    def __init__(self, folder: Path, history: list[dict[str, Any]], tensorboard: bool = True):
        self.csv_path = folder / "history.csv"
        folder.mkdir(parents=True, exist_ok=True)
        with open(self.csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows({key: row.get(key) for key in HISTORY_FIELDS} for row in history)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"), purge_step=len(history) + 1)

    def step(self, name: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(name, value, step)

    def epoch(self, row: dict[str, Any]) -> None:
        with open(self.csv_path, "a", newline="") as handle:
            csv.DictWriter(handle, HISTORY_FIELDS).writerow({key: row.get(key) for key in HISTORY_FIELDS})
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float | int) and math.isfinite(value):
                    group = "val" if key.startswith("val_") else "train" if key.startswith("train_") else "opt"
                    self.writer.add_scalar(f"{group}/{key.removeprefix(group + '_')}", value, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
