"""The stages of an analysis, from upload to result: one list for the core's progress callback, the job's database
row and the result page.

The core reports ``PROBE``, ``WINDOWS``, ``NETWORK`` and ``DONE`` with a fraction; the job queue adds the stages
around it (waiting, loading the model, saving the evidence with its own fraction, failed, reused).
``progress_percent`` maps a stage and its fraction onto the progress bar the page shows. ``HEATMAPS`` comes after
the verdict is saved and shown (the analysis is already done): its bar runs from 0 to 100 on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Stage(StrEnum):
    """Where an analysis is. The values are what the database stores and the API sends."""

    QUEUED = "queued"
    REQUEUED = "requeued"
    FETCHING = "fetching"
    LOADING = "loading"
    PROBE = "probe"
    WINDOWS = "windows"
    NETWORK = "network"
    SAVING = "saving"
    HEATMAPS = "heatmaps"
    DONE = "done"
    FAILED = "failed"
    REUSED = "reused"

    @property
    def label(self) -> str:
        """What a person reads on the result page."""
        return _LABELS[self]

    @classmethod
    def label_of(cls, value: str) -> str:
        """The label of a stored stage value; an unknown value (from a newer version) is shown as it is."""
        try:
            return cls(value).label
        except ValueError:
            return value


_LABELS: dict[Stage, str] = {
    Stage.QUEUED: "Waiting for a worker",
    Stage.REQUEUED: "Waiting for a worker (retry)",
    Stage.FETCHING: "Fetching the video",
    Stage.LOADING: "Loading the model",
    Stage.PROBE: "Reading the video",
    Stage.WINDOWS: "Finding and following faces",
    Stage.NETWORK: "Scoring face sequences",
    Stage.SAVING: "Saving the evidence",
    Stage.HEATMAPS: "Drawing heat maps",
    Stage.DONE: "Done",
    Stage.FAILED: "Failed",
    Stage.REUSED: "Done (same video analysed before)",
}

# The part of the progress bar (percent) each core stage fills as its fraction goes from 0 to 1.
_SPANS: dict[Stage, tuple[float, float]] = {
    Stage.PROBE: (1.0, 4.0),
    Stage.WINDOWS: (5.0, 90.0),
    Stage.NETWORK: (90.0, 96.0),
    Stage.DONE: (96.0, 96.0),
    Stage.SAVING: (96.0, 100.0),
    Stage.HEATMAPS: (0.0, 100.0),  # after the verdict is shown: a bar of its own
}


def progress_percent(stage: Stage, fraction: float) -> float:
    """Overall progress for a core stage at ``fraction`` of its own work."""
    low, high = _SPANS.get(stage, (0.0, 0.0))
    return round(low + (high - low) * max(0.0, min(1.0, fraction)), 1)


# The core's progress callback: called with a stage and the fraction of that stage done.
Progress = Callable[[Stage, float], None]


# A photo's stages in a photo's words (its "video" is one picture, its "face sequences" single faces).
_PHOTO_LABELS: dict[Stage, str] = {
    Stage.PROBE: "Reading the photo",
    Stage.WINDOWS: "Finding the faces",
    Stage.NETWORK: "Scoring the faces",
    Stage.REUSED: "Done (same photo analysed before)",
}


def label_for(value: str, photo: bool) -> str:
    """The label of a stored stage value, in a photo's words for a photo."""
    try:
        stage = Stage(value)
    except ValueError:
        return value
    return _PHOTO_LABELS.get(stage, stage.label) if photo else stage.label
