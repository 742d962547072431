"""The verdict first, the heat maps after: the second phase of an analysis job, and what the site and the API say
about it.

The worker saves the result (verdict, timeline, people, crops) as soon as it exists: the analysis is then ``done``
(100 %) and its page shows the answer. When heat maps were asked for, the row's stage is ``heatmaps`` and
``result["heatmaps"]["state"]`` is ``pending``; the same job then draws them (``draw``) with a progress of their own
(``heatmaps_progress``), writes their files beside the crops and stores them in the result: ``done``, or ``failed``
with a note saying why. A failure here never touches the verdict. A worker that dies while drawing leaves ``pending``
behind: once the row has been silent for ANALYSIS_STALE_SECONDS, :func:`state` reads it as ``failed``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from .detection.stages import Stage, progress_percent
from .models import Analysis

if TYPE_CHECKING:
    from .detection.model_loading import LoadedModel
    from .detection.results import AnalysisResult

log = logging.getLogger(__name__)

STATES = ("off", "pending", "done", "failed")
STOPPED_NOTE = "The worker stopped before the heat maps were drawn; the verdict above is complete without them."


def state(analysis: Analysis) -> str | None:
    """Where the heat maps of ``analysis`` are: off, pending, done or failed; None before there is a result. A result
    from before heat maps had a state reads as done (with maps) or off."""
    if analysis.status != Analysis.Status.DONE or not analysis.result:
        return None
    info = analysis.result.get("heatmaps") or {}
    found = info.get("state") or ("off" if info.get("mode", "off") == "off" else "done")
    if found == "pending" and _silent(analysis):
        return "failed"
    return found


def note(analysis: Analysis) -> str | None:
    """What a person reads about the maps: the result's note, or why pending maps will not come."""
    info = (analysis.result or {}).get("heatmaps") or {}
    if info.get("state") == "pending" and state(analysis) == "failed":
        return STOPPED_NOTE
    return info.get("note")


def progress(analysis: Analysis) -> float | None:
    """Percent of the heat maps drawn while they are pending, else None."""
    return (analysis.heatmaps_progress or 0.0) if state(analysis) == "pending" else None


def _silent(analysis: Analysis) -> bool:
    last = analysis.heartbeat_at or analysis.finished_at
    return last is None or timezone.now() - last > timedelta(seconds=settings.ANALYSIS_STALE_SECONDS)


class _Reporter:
    """The heat-map stage's (stage, fraction) callbacks into the row, at most twice a second (with a heartbeat)."""

    def __init__(self, analysis_id: str):
        self.analysis_id, self._last = analysis_id, 0.0

    def __call__(self, stage: Stage | str, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5 and fraction < 1.0:
            return
        self._last = now
        _pending(self.analysis_id).update(
            heatmaps_progress=progress_percent(Stage.HEATMAPS, fraction), heartbeat_at=timezone.now()
        )


def _pending(analysis_id: str):
    return Analysis.objects.filter(pk=analysis_id, status=Analysis.Status.DONE, stage=Stage.HEATMAPS)


def draw(analysis_id: str, result: AnalysisResult, loaded: list[LoadedModel], crops_dir: Any) -> None:
    """After the verdict is saved: draw the pending maps, write their files, store them; never raises."""
    from .verdict_rule import draw_heatmaps

    report = _Reporter(analysis_id)
    try:
        report(Stage.HEATMAPS, 0.0, force=True)
        draw_heatmaps(result, loaded, progress=report)
        if not _pending(analysis_id).exists():  # deleted (or otherwise settled) meanwhile: nothing to store
            return
        result.save_heatmaps(crops_dir)
        _store(analysis_id, result.to_dict(), result.timings.get("heatmaps"))
    except Exception as exc:
        log.exception("Heat maps of analysis %s failed", analysis_id)
        failed = {
            **result.heatmaps,
            "state": "failed",
            "note": f"The heat maps could not be drawn ({type(exc).__name__}: {exc}); the verdict stands.",
        }
        _store(analysis_id, {"heatmaps": {**failed, "maps": []}}, None)


def _store(analysis_id: str, fresh: dict[str, Any], seconds: float | None) -> None:
    """Put the maps' description and files into the stored result and settle the stage."""
    analysis = Analysis.objects.filter(pk=analysis_id).only("result", "timings").first()
    if analysis is None or not analysis.result:
        return
    stored = dict(analysis.result)
    stored["heatmaps"] = fresh["heatmaps"]
    if "crop_files" in fresh:
        stored["crop_files"] = fresh["crop_files"]
    timings = dict(analysis.timings or {})
    if seconds is not None:
        stored["timings"] = {**stored.get("timings", {}), "heatmaps": round(seconds, 4)}
        timings["heatmaps"] = seconds
    _pending(analysis_id).update(
        result=stored, timings=timings, stage=Stage.DONE, heatmaps_progress=None, heartbeat_at=timezone.now()
    )
