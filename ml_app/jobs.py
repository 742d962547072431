"""An analysis's life after it is submitted: queued, claimed by one worker, run, finished or failed, retried.

Every state change is a conditional UPDATE (status and attempt number in the WHERE clause), so a message delivered
twice, a worker presumed dead that comes back, or two watchdogs running at once never make two workers write one
analysis. The watchdog (``recover_stale``) requeues analyses whose worker stopped reporting, up to
ANALYSIS_MAX_ATTEMPTS, and then fails them with the reason: nothing stays "running" forever; ``refresh_if_stale`` is
the same check for the one analysis a page or an API call is about to show.

Jobs are sent to the queue by task name, so this module does not import the task (ml_app.tasks imports this one);
creating an analysis from an upload is ml_app.submissions' work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from project_settings.celery import app as celery_app

from . import analysis_events
from .detection.stages import Stage, progress_percent
from .models import Analysis

log = logging.getLogger(__name__)

ANALYZE_TASK = "ml_app.analyze_video"  # the name ml_app.tasks registers its task under
HEARTBEAT_SECONDS = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- queueing -------------------------------------------------------------------------------------------------------


def enqueue(analysis_id, attempt: int) -> None:
    """Send the job for this attempt to the queue now."""
    celery_app.send_task(ANALYZE_TASK, args=[str(analysis_id), attempt])


def enqueue_on_commit(analysis_id, attempt: int) -> None:
    """Send the job once the transaction that queued the analysis commits (a worker must find the row)."""
    transaction.on_commit(lambda: enqueue(analysis_id, attempt))


def retry(analysis: Analysis) -> bool:
    """Queue a failed analysis again (the upload is kept for exactly this); False if it is not failed or its video
    is no longer stored (a link that was never fetched is fetched again)."""
    if not analysis.video_path.is_file() and not _refetchable(analysis):
        return False
    updated = Analysis.objects.filter(pk=analysis.pk, status=Analysis.Status.FAILED).update(
        status=Analysis.Status.QUEUED,
        stage=Stage.REQUEUED,
        progress=0.0,
        error_code="",
        error_message="",
        attempts=0,
        finished_at=None,
    )
    if updated:
        enqueue_on_commit(analysis.pk, 1)
    return bool(updated)


def _refetchable(analysis: Analysis) -> bool:
    """A link whose fetch failed: a retry fetches it again."""
    return bool(analysis.source_url) and not analysis.video


# --- running (in the worker) ----------------------------------------------------------------------------------------


def claim(analysis_id: str, attempt: int) -> bool:
    """Take the analysis for this attempt; False if another delivery or worker already has it."""
    now = timezone.now()
    claimed = bool(
        Analysis.objects.filter(pk=analysis_id, status=Analysis.Status.QUEUED, attempts=attempt - 1).update(
            status=Analysis.Status.RUNNING,
            attempts=attempt,
            stage=Stage.LOADING,
            progress=0.0,
            started_at=now,
            heartbeat_at=now,
            worker=worker_name(),
            error_code="",
            error_message="",
        )
    )
    if claimed:
        analysis_events.emit("started", analysis_id, attempt=attempt, worker=worker_name())
    return claimed


def _mine(analysis_id: str, attempt: int):
    return Analysis.objects.filter(pk=analysis_id, status=Analysis.Status.RUNNING, attempts=attempt)


class Heartbeat:
    """Reports that the worker is alive every few seconds, even while one stage takes long."""

    def __init__(self, analysis_id: str, attempt: int):
        self.analysis_id, self.attempt = analysis_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        _mine(self.analysis_id, self.attempt).update(heartbeat_at=timezone.now())
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = min(HEARTBEAT_SECONDS, settings.ANALYSIS_STALE_SECONDS / 4)
        try:
            while not self._stop.wait(interval):
                _mine(self.analysis_id, self.attempt).update(heartbeat_at=timezone.now())
        finally:
            close_old_connections()


class ProgressReporter:
    """Turns the core's (stage, fraction) callbacks into stage and percent in the database, at most twice a second.

    The core's ``DONE`` is stored as ``SAVING``: the job still has the evidence to save.
    """

    def __init__(self, analysis_id: str, attempt: int):
        self.analysis_id, self.attempt = analysis_id, attempt
        self._last = 0.0

    def __call__(self, stage: Stage | str, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5 and fraction < 1.0:
            return
        self._last = now
        _mine(self.analysis_id, self.attempt).update(
            stage=Stage.SAVING if stage == Stage.DONE else stage,
            progress=progress_percent(stage, fraction),
            heartbeat_at=timezone.now(),
        )


def finish(analysis_id: str, attempt: int, result_data: dict, timings: dict, stage: Stage = Stage.DONE) -> bool:
    """The verdict saved: done. ``stage`` HEATMAPS: done, with heat maps still being drawn (ml_app.heatmap_phase),
    whose own progress starts at 0."""
    finished = bool(
        _mine(analysis_id, attempt).update(
            status=Analysis.Status.DONE,
            stage=stage,
            progress=100.0,
            heatmaps_progress=0.0 if stage == Stage.HEATMAPS else None,
            result=result_data,
            verdict=result_data["verdict"],
            fake_probability=result_data["fake_probability"],
            timings=timings,
            finished_at=timezone.now(),
        )
    )
    if finished:
        analysis_events.emit(
            "done", analysis_id, verdict=result_data["verdict"], seconds=round(float(timings.get("total", 0.0)), 3)
        )
    return finished


def fail(analysis_id: str, attempt: int, code: str, message: str) -> bool:
    log.warning("Analysis %s failed (%s): %s", analysis_id, code, message)
    failed = bool(
        _mine(analysis_id, attempt).update(
            status=Analysis.Status.FAILED,
            stage=Stage.FAILED,
            error_code=code,
            error_message=message,
            finished_at=timezone.now(),
        )
    )
    if failed:
        analysis_events.emit("failed", analysis_id, error_code=code)
    return failed


# --- the watchdog ---------------------------------------------------------------------------------------------------


def recover_stale(queryset=None) -> dict[str, int]:
    """Requeue or fail analyses whose worker stopped reporting. Returns counts of what it did."""
    cutoff = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_SECONDS)
    candidates = (queryset if queryset is not None else Analysis.objects.all()).filter(
        status=Analysis.Status.RUNNING, heartbeat_at__lt=cutoff
    )
    counts = {"requeued": 0, "failed": 0}
    for analysis in candidates:
        running = Analysis.objects.filter(pk=analysis.pk, status=Analysis.Status.RUNNING, attempts=analysis.attempts)
        if analysis.attempts < settings.ANALYSIS_MAX_ATTEMPTS:
            if running.update(
                status=Analysis.Status.QUEUED,
                stage=Stage.REQUEUED,
                progress=0.0,
                error_message=f"Attempt {analysis.attempts} stopped: its worker ({analysis.worker}) stopped "
                "responding. Retrying.",
            ):
                counts["requeued"] += 1
                analysis_events.emit("requeued", analysis.pk, attempt=analysis.attempts + 1)
                enqueue_on_commit(analysis.pk, analysis.attempts + 1)
        elif running.update(
            status=Analysis.Status.FAILED,
            stage=Stage.FAILED,
            error_code="worker_lost",
            error_message=f"The worker analysing this video stopped responding {analysis.attempts} times (it may "
            "have run out of memory or been restarted). The video is kept: retry, or try fewer frames per window "
            "(Quick).",
            finished_at=timezone.now(),
        ):
            counts["failed"] += 1
            analysis_events.emit("failed", analysis.pk, error_code="worker_lost")
    if any(counts.values()):
        log.warning("Watchdog: %s", counts)
    return counts


def refresh_if_stale(analysis: Analysis) -> Analysis:
    """Before showing a running analysis: if its worker went silent, requeue or fail it now and reload it."""
    if analysis.status == Analysis.Status.RUNNING and any(
        recover_stale(Analysis.objects.filter(pk=analysis.pk)).values()
    ):
        analysis.refresh_from_db()
    return analysis


def requeue_waiting() -> int:
    """Send the queued analyses to the queue again (a worker that died may have taken their messages with it).

    Safe to repeat: a worker claims an analysis only once per attempt, extra deliveries are dropped.
    """
    waiting = list(Analysis.objects.filter(status=Analysis.Status.QUEUED).values_list("pk", "attempts"))
    for pk, attempts in waiting:
        enqueue(pk, attempts + 1)
    return len(waiting)
