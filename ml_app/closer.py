"""Look closer: analyse a finished video again with twice as many windows (up to ``LOOK_CLOSER_MAX_WINDOWS``), when
the first analysis looked at only part of it. A new analysis of the same file, owner and privacy, queued as an
upload is; the first one stays as it was."""

from __future__ import annotations

import shutil

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from . import jobs, submissions
from .models import Analysis
from .privacy import may_open
from .uploads import UploadRejected

LOOK_CLOSER_MAX_WINDOWS = 64  # the most windows a "Look closer" asks for


def windows_used(analysis: Analysis) -> int:
    return analysis.max_windows or settings.DETECTION_MAX_WINDOWS


def closer_windows(analysis: Analysis) -> int | None:
    """How many windows a closer look would use; None when there is nothing more to see (a photo, not done, every
    window the video holds already looked at, or already the most)."""
    result = analysis.result or {}
    if analysis.status != Analysis.Status.DONE or analysis.media == "image" or not result:
        return None
    used = windows_used(analysis)
    # As video.plan_windows places them: at most one window per sequence_length frames.
    holds = int((result.get("video") or {}).get("frame_count") or 0) // max(1, int(result.get("sequence_length") or 1))
    if len(result.get("windows") or []) < used or min(holds, LOOK_CLOSER_MAX_WINDOWS) <= used:
        return None  # the video holds no more windows, or this is the most we look at
    return min(2 * used, holds, LOOK_CLOSER_MAX_WINDOWS)


@require_POST
def look_closer(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = get_object_or_404(Analysis, pk=analysis_id)
    if not may_open(request, analysis):
        raise Http404("no such analysis")
    windows = closer_windows(analysis)
    if windows is None or not analysis.video_path.is_file():
        messages.info(request, "There is nothing more of this video to look at.")
        return redirect("ml_app:analysis", analysis.pk)
    closer = Analysis(
        owner=analysis.owner,
        private=analysis.private,
        original_name=analysis.original_name,
        size_bytes=analysis.size_bytes,
        sha256=analysis.sha256,
        sequence_length=analysis.sequence_length,
        checkpoint=analysis.checkpoint,
        checkpoint_sha256=analysis.checkpoint_sha256,
        ensemble=analysis.ensemble,
        ensemble_name=analysis.ensemble_name,
        max_windows=windows,
    )
    target = closer.media_dir / analysis.video_path.name
    closer.video = str(target.relative_to(settings.MEDIA_ROOT))
    try:
        with transaction.atomic():
            submissions._lock_queue()
            submissions._check_queue()
            closer.media_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(analysis.video_path, target)
            closer.save()
            jobs.enqueue_on_commit(closer.pk, 1)
    except UploadRejected as error:
        shutil.rmtree(closer.media_dir, ignore_errors=True)
        messages.error(request, error.message)
        return redirect("ml_app:analysis", analysis.pk)
    except BaseException:
        shutil.rmtree(closer.media_dir, ignore_errors=True)
        raise
    return redirect("ml_app:analysis", closer.pk)
