"""An analysis's life: created from a validated upload, queued, claimed by one worker, run, finished or failed.

Every state change is a conditional UPDATE (status and attempt number in the WHERE clause), so a message delivered
twice, a worker presumed dead that comes back, or two watchdogs running at once never make two workers write one
analysis. The watchdog (``recover_stale``) requeues analyses whose worker stopped reporting, up to
ANALYSIS_MAX_ATTEMPTS, and then fails them with the reason: nothing stays "running" forever.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from .models import Analysis, Checkpoint
from .uploads import ValidatedVideo

log = logging.getLogger(__name__)

STAGE_LABELS = {
    "queued": "Waiting for a worker",
    "requeued": "Waiting for a worker (retry)",
    "loading": "Loading the model",
    "probe": "Reading the video",
    "windows": "Finding and following faces",
    "network": "Scoring face sequences",
    "saving": "Saving the evidence",
    "done": "Done",
    "failed": "Failed",
    "reused": "Done (same video analysed before)",
}
HEARTBEAT_SECONDS = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- creating -------------------------------------------------------------------------------------------------------


def create_analysis(validated: ValidatedVideo, checkpoint: Checkpoint, owner=None) -> Analysis:
    """Store the upload under the analysis' own folder and queue it, or reuse an earlier result for the same bytes
    and the same checkpoint."""
    upload = validated.upload
    analysis = Analysis(
        owner=owner,
        original_name=validated.original_name,
        size_bytes=upload.size,
        sha256=upload.sha256,
        sequence_length=checkpoint.sequence_length,
        checkpoint=checkpoint,
        checkpoint_sha256=checkpoint.sha256,
    )
    analysis.media_dir.mkdir(parents=True, exist_ok=True)
    extension = Path(upload.name).suffix.lower()
    target = analysis.media_dir / f"video{extension}"
    upload.close()
    shutil.move(str(upload.path), target)
    analysis.video = str(target.relative_to(settings.MEDIA_ROOT))

    earlier = (
        Analysis.objects.filter(
            sha256=analysis.sha256, checkpoint_sha256=analysis.checkpoint_sha256, status=Analysis.Status.DONE
        )
        .exclude(result=None)
        .order_by("-finished_at")
        .first()
    )
    if earlier is not None and _copy_evidence(earlier, analysis):
        now = timezone.now()
        analysis.status = Analysis.Status.DONE
        analysis.stage = "reused"
        analysis.progress = 100.0
        analysis.result = earlier.result
        analysis.verdict = earlier.verdict
        analysis.fake_probability = earlier.fake_probability
        analysis.timings = {"reused": True}
        analysis.reused_from = earlier
        analysis.started_at = analysis.finished_at = now
        analysis.save()
        return analysis

    analysis.save()
    transaction.on_commit(lambda: enqueue(analysis.pk, 1))
    return analysis


def _copy_evidence(source: Analysis, target: Analysis) -> bool:
    """Copy the face crops of an earlier analysis; False if they are gone (then the video is analysed again)."""
    if not source.crops_dir.is_dir():
        return False
    shutil.copytree(source.crops_dir, target.crops_dir, dirs_exist_ok=True)
    return True


def enqueue(analysis_id, attempt: int) -> None:
    from .tasks import analyze_video_task

    analyze_video_task.apply_async(args=[str(analysis_id), attempt])


def retry(analysis: Analysis) -> bool:
    """Queue a failed analysis again (the upload is kept for exactly this); False if it is not failed or its video
    is no longer stored."""
    if not analysis.video_path.is_file():
        return False
    updated = Analysis.objects.filter(pk=analysis.pk, status=Analysis.Status.FAILED).update(
        status=Analysis.Status.QUEUED,
        stage="requeued",
        progress=0.0,
        error_code="",
        error_message="",
        attempts=0,
        finished_at=None,
    )
    if updated:
        transaction.on_commit(lambda: enqueue(analysis.pk, 1))
    return bool(updated)


# --- running (in the worker) ----------------------------------------------------------------------------------------


def claim(analysis_id: str, attempt: int) -> bool:
    """Take the analysis for this attempt; False if another delivery or worker already has it."""
    now = timezone.now()
    return bool(
        Analysis.objects.filter(pk=analysis_id, status=Analysis.Status.QUEUED, attempts=attempt - 1).update(
            status=Analysis.Status.RUNNING,
            attempts=attempt,
            stage="loading",
            progress=0.0,
            started_at=now,
            heartbeat_at=now,
            worker=worker_name(),
            error_code="",
            error_message="",
        )
    )


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
    """Turns the core's (stage, fraction) callbacks into stage and percent in the database, at most twice a second."""

    SPANS = {"probe": (1.0, 4.0), "windows": (5.0, 90.0), "network": (90.0, 96.0), "done": (96.0, 96.0)}

    def __init__(self, analysis_id: str, attempt: int):
        self.analysis_id, self.attempt = analysis_id, attempt
        self._last = 0.0

    def __call__(self, stage: str, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5 and fraction < 1.0:
            return
        self._last = now
        low, high = self.SPANS.get(stage, (0.0, 0.0))
        _mine(self.analysis_id, self.attempt).update(
            stage="saving" if stage == "done" else stage,
            progress=round(low + (high - low) * max(0.0, min(1.0, fraction)), 1),
            heartbeat_at=timezone.now(),
        )


def finish(analysis_id: str, attempt: int, result_data: dict, timings: dict) -> bool:
    return bool(
        _mine(analysis_id, attempt).update(
            status=Analysis.Status.DONE,
            stage="done",
            progress=100.0,
            result=result_data,
            verdict=result_data["verdict"],
            fake_probability=result_data["fake_probability"],
            timings=timings,
            finished_at=timezone.now(),
        )
    )


def fail(analysis_id: str, attempt: int, code: str, message: str) -> bool:
    log.warning("Analysis %s failed (%s): %s", analysis_id, code, message)
    return bool(
        _mine(analysis_id, attempt).update(
            status=Analysis.Status.FAILED,
            stage="failed",
            error_code=code,
            error_message=message,
            finished_at=timezone.now(),
        )
    )


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
                stage="requeued",
                progress=0.0,
                error_message=f"Attempt {analysis.attempts} stopped: its worker ({analysis.worker}) stopped "
                "responding. Retrying.",
            ):
                counts["requeued"] += 1
                attempt = analysis.attempts + 1
                transaction.on_commit(lambda pk=analysis.pk, attempt=attempt: enqueue(pk, attempt))
        elif running.update(
            status=Analysis.Status.FAILED,
            stage="failed",
            error_code="worker_lost",
            error_message=f"The worker analysing this video stopped responding {analysis.attempts} times (it may "
            "have run out of memory or been restarted). The video is kept: retry, or try a shorter sequence length.",
            finished_at=timezone.now(),
        ):
            counts["failed"] += 1
    if any(counts.values()):
        log.warning("Watchdog: %s", counts)
    return counts


def requeue_waiting() -> int:
    """Send the queued analyses to the queue again (a worker that died may have taken their messages with it).

    Safe to repeat: a worker claims an analysis only once per attempt, extra deliveries are dropped.
    """
    waiting = list(Analysis.objects.filter(status=Analysis.Status.QUEUED).values_list("pk", "attempts"))
    for pk, attempts in waiting:
        enqueue(pk, attempts + 1)
    return len(waiting)
