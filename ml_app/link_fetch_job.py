"""The worker's "Fetching the video" stage of a link's analysis: download what the link leads to (ml_app.link_media,
through the guarded fetcher), then treat the file exactly as an upload: the same checks and limits and model choice
(ml_app.model_choice), the same place on disk, the same reuse of an earlier result for the same file and checkpoint
(ml_app.submissions). A failure is recorded on the analysis with its specific code and message, and the file, if
any, is removed: nothing stays in MEDIA_ROOT/incoming.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from . import jobs
from .detection.errors import FetchError
from .detection.files import file_sha256
from .detection.stages import Stage
from .link_media import FetchedMedia, LinkLimits, fetch_media
from .model_choice import ModelChoice, validate
from .models import Analysis
from .submissions import _copy_evidence, _earlier_result, _reuse
from .uploads import HashedUpload, UploadRejected, ValidatedUpload, incoming_dir, is_photo

log = logging.getLogger(__name__)


def limits() -> LinkLimits:
    """The site's limits for a link: those of an upload, and the URL_* settings."""
    return LinkLimits(
        max_bytes=settings.MAX_UPLOAD_BYTES,
        timeout=settings.URL_FETCH_TIMEOUT,
        allow_private=settings.URL_FETCH_ALLOW_PRIVATE,
        max_seconds=settings.MAX_VIDEO_SECONDS,
        min_rate=settings.URL_FETCH_MIN_RATE,
        extractors=tuple(settings.URL_PAGE_EXTRACTORS),
    )


def _mine(analysis: Analysis, attempt: int):
    return Analysis.objects.filter(pk=analysis.pk, status=Analysis.Status.RUNNING, attempts=attempt)


class _ByteProgress:
    """Bytes received, written to the analysis at most twice a second (the result page and the API show them)."""

    def __init__(self, analysis: Analysis, attempt: int):
        self.analysis, self.attempt, self._last = analysis, attempt, 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < 0.5 and done != total:
            return
        self._last = now
        _mine(self.analysis, self.attempt).update(
            fetched_bytes=done, fetch_total_bytes=total, heartbeat_at=timezone.now()
        )


def fetch_link(analysis: Analysis, attempt: int) -> bool:
    """Fetch the analysis' link and store its file like an upload's. True when the analysis goes on to the network;
    False when it is over (failed with its reason, or done by reusing an earlier result)."""
    _mine(analysis, attempt).update(stage=Stage.FETCHING, progress=0.0, fetched_bytes=0, fetch_total_bytes=None)
    try:
        media = fetch_media(analysis.source_url, incoming_dir(), limits(), _ByteProgress(analysis, attempt))
    except FetchError as error:
        jobs.fail(str(analysis.pk), attempt, error.code, error.message)
        return False
    except Exception as error:  # a bug, or the task's time limit: recorded, never left "running"
        log.exception("Fetching %s for analysis %s failed unexpectedly", analysis.source_url, analysis.pk)
        jobs.fail(str(analysis.pk), attempt, "fetch_failed", f"The link could not be fetched ({type(error).__name__}).")
        return False
    upload = HashedUpload(media.path, media.name, media.size, file_sha256(media.path), media.content_type)
    try:
        validated, choice = validate(upload, analysis.sequence_length, analysis.ensemble_name)
        return _keep(analysis, attempt, validated, choice, media)
    except UploadRejected as error:
        jobs.fail(str(analysis.pk), attempt, error.code, error.message)
        return False
    finally:
        upload.discard()  # nothing, once the file was kept


def _keep(
    analysis: Analysis, attempt: int, validated: ValidatedUpload, choice: ModelChoice, media: FetchedMedia
) -> bool:
    upload = validated.upload
    analysis.original_name = validated.original_name
    analysis.size_bytes, analysis.sha256 = upload.size, upload.sha256
    analysis.sequence_length = choice.checkpoint.sequence_length
    analysis.checkpoint, analysis.checkpoint_sha256 = choice.checkpoint, choice.identity
    analysis.ensemble, analysis.ensemble_name = choice.ensemble, choice.ensemble.name if choice.ensemble else ""
    analysis.final_url, analysis.source_title, analysis.fetched_at = media.final_url, media.title, media.fetched_at
    stem = "photo" if is_photo(upload.name) else "video"
    target = analysis.media_dir / f"{stem}{Path(upload.name).suffix.lower()}"
    analysis.video = str(target.relative_to(settings.MEDIA_ROOT))
    analysis.media_dir.mkdir(parents=True, exist_ok=True)
    upload.move_to(target)
    fields = {
        name: getattr(analysis, name)
        for name in (
            "original_name", "size_bytes", "sha256", "sequence_length", "checkpoint", "checkpoint_sha256",
            "ensemble", "ensemble_name", "final_url", "source_title", "fetched_at", "video",
        )
    }  # fmt: skip
    earlier = _earlier_result(analysis)
    if earlier is not None and _copy_evidence(earlier, analysis):
        _reuse(analysis, earlier)
        reused = ("status", "stage", "progress", "result", "verdict", "fake_probability", "timings", "reused_from")
        fields.update({name: getattr(analysis, name) for name in reused}, finished_at=analysis.finished_at)
        _mine(analysis, attempt).update(**fields)
        return False
    # nothing updated: no longer this attempt's (presumed dead and requeued), and the next attempt fetches again
    return bool(_mine(analysis, attempt).update(**fields, stage=Stage.LOADING))
