"""The raw score of every validation clip at the kept epoch, written beside ``best.pt``
(``validation_scores.json``), and read back as items and scores.

Cross-validation folds validate on groups no fold model trained on, so their files together hold an out-of-fold score
for every video outside the test split: what the default-model recipe calibrates and chooses thresholds on
(:mod:`.out_of_fold`). Each row is one clip: video id, window, track, person, label, method, dataset, group and the
raw fake score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml_app.detection.files import atomic_write_text

from .dataset import ClipItem
from .manifest import ClipRecord, VideoRecord

VALIDATION_SCORES = "validation_scores.json"
COLUMNS = ("video_id", "window", "track", "person", "label", "method", "dataset", "group", "score")


def write_validation_scores(
    path: Path, items: Sequence[ClipItem], scores: Sequence[float] | np.ndarray, epoch: int
) -> None:
    rows = [
        [
            item.video.video_id,
            item.clip.window,
            item.clip.track,
            item.clip.person,
            item.video.label,
            item.video.method,
            item.video.dataset,
            item.video.group,
            round(float(score), 7),
        ]
        for item, score in zip(items, scores, strict=True)
    ]
    atomic_write_text(path, json.dumps({"epoch": epoch, "columns": list(COLUMNS), "rows": rows}))


def read_validation_scores(path: Path) -> tuple[list[ClipItem], np.ndarray]:
    """Items (enough of a video and clip record for the app's rule and the metrics) and their raw scores."""
    data = json.loads(Path(path).read_text())
    index = {name: data["columns"].index(name) for name in COLUMNS}
    items, scores = [], []
    videos: dict[str, VideoRecord] = {}
    for row in data["rows"]:
        video_id = row[index["video_id"]]
        video = videos.setdefault(
            video_id,
            VideoRecord(
                video_id=video_id,
                video=video_id,
                source_path="",
                label=row[index["label"]],
                dataset=row[index["dataset"]],
                group=row[index["group"]],
                method=row[index["method"]],
            ),
        )
        clip = ClipRecord("", row[index["window"]], 0, row[index["track"]], row[index["person"]], 0, 0)
        items.append(ClipItem(video, clip))
        scores.append(float(row[index["score"]]))
    return items, np.asarray(scores, dtype=np.float64)
