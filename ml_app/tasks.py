"""The Celery task that analyses one uploaded video, and the worker's watchdog: a thin layer over ml_app.jobs (the
job's states), ml_app.retention (what the media folder keeps) and the detection core (the analysis itself).

The task is registered under ``jobs.ANALYZE_TASK``, the name ml_app.jobs sends jobs by. Heavy imports (torch, the
detection core) happen inside the task, in the worker's child process, so the worker's parent process never
initialises PyTorch before forking.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections

from . import challenger, heatmap_phase, jobs, retention, worker_presence
from .detection.stages import Stage
from .models import Analysis

log = logging.getLogger(__name__)


@shared_task(name=jobs.ANALYZE_TASK, acks_late=True, reject_on_worker_lost=True)
def analyze_video_task(analysis_id: str, attempt: int) -> None:
    """Analyse one video for one attempt; a delivery for an attempt already taken does nothing.

    (Celery's Django fixup closes stale database connections around each task.)
    """
    if not jobs.claim(analysis_id, attempt):
        log.info("Analysis %s attempt %s is not waiting for a worker; skipping this delivery.", analysis_id, attempt)
        return
    with jobs.Heartbeat(analysis_id, attempt):
        _run(analysis_id, attempt)


def _members(analysis: Analysis) -> list:
    """The checkpoints the analysis was submitted with: its ensemble's members now, or its one checkpoint."""
    if analysis.ensemble_name:
        return analysis.ensemble.current_members() if analysis.ensemble is not None else []
    return [analysis.checkpoint] if analysis.checkpoint is not None else []


def _with_its_file(analysis: Analysis, attempt: int) -> Analysis | None:
    """The analysis with its file: a link is fetched first, then analysed like an upload (None: the fetch failed,
    and the analysis with it)."""
    if not analysis.source_url or analysis.video:
        return analysis
    from .link_fetch_job import fetch_link

    if not fetch_link(analysis, attempt):
        return None
    return Analysis.objects.select_related("checkpoint", "ensemble").get(pk=analysis.pk)


def _available_members(analysis: Analysis, attempt: int) -> list | None:
    """The analysis' checkpoints, or None once the analysis is failed because one is gone."""
    members = _members(analysis)
    if members and all(member.file_path.is_file() for member in members):
        return members
    jobs.fail(
        str(analysis.pk),
        attempt,
        "checkpoint_unavailable",
        "The checkpoint chosen for this analysis has been removed from the registry or its file is missing. "
        "Upload the video again to use the current checkpoint.",
    )
    return None


def _run(analysis_id: str, attempt: int) -> None:
    import torch

    from .detection.errors import DetectionError
    from .detection.files import combined_sha256
    from .detection.model_loading import is_model_cached, load_detector_model
    from .detection.threads import set_threads
    from .verdict_rule import decide, plan_heatmaps, with_provenance

    set_threads(settings.DETECTION_TORCH_THREADS or None, settings.DETECTION_INTEROP_THREADS or None)
    analysis = _with_its_file(Analysis.objects.select_related("checkpoint", "ensemble").get(pk=analysis_id), attempt)
    members = _available_members(analysis, attempt) if analysis is not None else None
    if analysis is None or members is None:
        return
    report = jobs.ProgressReporter(analysis_id, attempt)
    try:
        freshly_loaded = not all(is_model_cached(m.file_path, settings.DETECTION_DEVICE) for m in members)
        loaded = [load_detector_model(member.file_path, settings.DETECTION_DEVICE) for member in members]
        digests = [str(one.checkpoint.sha256) for one in loaded]
        identity = combined_sha256(digests) if analysis.ensemble_name else digests[0]
        if identity != analysis.checkpoint_sha256:
            names = ", ".join(member.name for member in members)
            jobs.fail(
                analysis_id,
                attempt,
                "checkpoint_changed",
                f"The file of checkpoint '{names}' changed after this video was uploaded (its sha256 no "
                "longer matches). An administrator should register the new file; then upload again.",
            )
            return
        result = decide(
            analysis.video_path,
            loaded,
            analysis.ensemble_name or None,
            max_windows=analysis.max_windows or settings.DETECTION_MAX_WINDOWS,
            batch_size=settings.DETECTION_BATCH_SIZE,
            progress=report,
        )
        report(Stage.DONE, 1.0, force=True)
        pending = plan_heatmaps(result, loaded)  # the verdict first: the maps follow once it is saved
        result.save_crops(analysis.crops_dir, progress=lambda fraction: report(Stage.SAVING, fraction))
        result_data = with_provenance(result, analysis.video_path)  # what the file says of itself, apart
        timings = {
            **result.timings,
            "checkpoint_load": sum(one.load_seconds for one in loaded) if freshly_loaded else 0.0,
            "checkpoint_cached": not freshly_loaded,
        }
        _finish(analysis, attempt, result_data, timings, maps=(result, loaded) if pending else None)
    except DetectionError as exc:
        jobs.fail(analysis_id, attempt, exc.code, exc.message)
    except SoftTimeLimitExceeded:
        jobs.fail(
            analysis_id,
            attempt,
            "time_limit",
            f"The analysis took longer than the {settings.CELERY_TASK_SOFT_TIME_LIMIT} s limit. Try a shorter video "
            "or fewer frames per window (Quick).",
        )
    except torch.cuda.OutOfMemoryError:
        jobs.fail(
            analysis_id,
            attempt,
            "gpu_out_of_memory",
            "The GPU ran out of memory. Try fewer frames per window (Quick), or ask the administrator to lower "
            "DETECTION_BATCH_SIZE.",
        )
    except MemoryError:
        jobs.fail(
            analysis_id,
            attempt,
            "out_of_memory",
            "The worker ran out of memory. Try fewer frames per window (Quick) or a smaller video.",
        )
    except Exception as exc:
        log.exception("Analysis %s failed unexpectedly", analysis_id)
        jobs.fail(
            analysis_id,
            attempt,
            "internal_error",
            f"The analysis failed unexpectedly ({type(exc).__name__}: {exc}). The error is logged on the worker; "
            "retry, or report it with this analysis' address.",
        )


@worker_process_init.connect
def _on_process_start(**_kwargs) -> None:
    """In each pool process, before its first job, in the background (Celery gives a starting process seconds to
    report): grad-cam imported, so that no analysis pays that import (seconds) while someone waits, and the process
    that computes face descriptors beside the analysis started."""

    def warm() -> None:
        from .detection import descriptor_process
        from .detection.gradcam import preload

        descriptor_process.warm()

        if settings.DETECTION_HEATMAPS != "off":
            preload()
            log.info("Pool process ready: the heat maps' import is paid")

    threading.Thread(target=warm, name="warm-up", daemon=True).start()


def _finish(analysis: Analysis, attempt: int, result_data: dict, timings: dict, maps: tuple | None) -> None:
    """Store the user's result (done, or done with heat maps still to draw when ``maps``, the result and its loaded
    models, is given); draw them; then, for the analyses in its share, the challenger scores the video too, after
    everything the user waits for."""
    if not jobs.finish(str(analysis.pk), attempt, result_data, timings, Stage.HEATMAPS if maps else Stage.DONE):
        return
    if maps:
        heatmap_phase.draw(str(analysis.pk), *maps, analysis.crops_dir)
    challenger.score(analysis, result_data, timings.get("total"))


# --- the watchdog, in the worker's main process ---------------------------------------------------------------------

_watchdog_stop = threading.Event()
_watchdog_thread: list[threading.Thread] = []
PURGE_EVERY_SECONDS = 3600


def _watchdog_loop() -> None:
    interval = max(1.0, settings.ANALYSIS_STALE_SECONDS / 3)
    purged_at = time.monotonic()
    while not _watchdog_stop.wait(interval):
        try:
            worker_presence.beat(jobs.worker_name())
            jobs.recover_stale()
            if time.monotonic() - purged_at > PURGE_EVERY_SECONDS:
                purged_at = time.monotonic()
                retention.purge()
        except Exception:
            log.exception("Watchdog pass failed")
        finally:
            close_old_connections()


@worker_ready.connect
def _on_worker_ready(**_kwargs) -> None:
    """A starting worker recovers what a dead one left behind (jobs and stale media), then keeps watching."""
    try:
        worker_presence.beat(jobs.worker_name())
        worker_presence.forget_old()
        counts = jobs.recover_stale()
        waiting = jobs.requeue_waiting()
        purged = retention.purge()
        log.info("Worker ready: recovered %s, re-sent %d queued analyses; purged %s", counts, waiting, purged)
    finally:
        close_old_connections()
    _watchdog_stop.clear()
    _watchdog_thread[:] = [threading.Thread(target=_watchdog_loop, name="analysis-watchdog", daemon=True)]
    _watchdog_thread[0].start()


@worker_shutdown.connect
def _on_worker_shutdown(**_kwargs) -> None:
    _watchdog_stop.set()
    for thread in _watchdog_thread:  # its pass in progress ends first, so no heartbeat follows the removal
        thread.join(timeout=15)
    try:
        worker_presence.gone(jobs.worker_name())
    except Exception:
        log.exception("Could not remove the worker's heartbeat")
    finally:
        close_old_connections()
