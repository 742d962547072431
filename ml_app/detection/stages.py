"""The stages of an analysis, from upload to result: one list for the core's progress callback, the job's database
row and the result page.

The core reports ``PROBE``, ``WINDOWS``, ``NETWORK`` and ``DONE`` with a fraction; the job queue adds the stages
around it (waiting, loading the model, saving the evidence, failed, reused). ``progress_percent`` maps a core stage
and its fraction onto the one progress bar the page shows.
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
}


def progress_percent(stage: Stage, fraction: float) -> float:
    """Overall progress for a core stage at ``fraction`` of its own work."""
    low, high = _SPANS.get(stage, (0.0, 0.0))
    return round(low + (high - low) * max(0.0, min(1.0, fraction)), 1)


# The core's progress callback: called with a stage and the fraction of that stage done.
Progress = Callable[[Stage, float], None]
