"""Submitting a video: the one path from an upload request to a queued (or reused) analysis, for the site and the API.

It owns every step between the request and the job queue:

* receiving: the body is parsed by uploads.LimitedUploadHandler (``prepare`` installs it before anything reads the
  body), which enforces the size limit while the bytes stream in and hashes the file on the way;
* validating: the file name, the sequence length, an active checkpoint for it, and the video probe
  (uploads.validate_video), in that order, each refusal an UploadRejected with its own code, message and field;
* storing the video under the analysis' own folder (``MEDIA_ROOT/analyses/<uuid>/``);
* reusing an earlier done result for the same sha256 and the same checkpoint sha256, its face crops copied;
* queueing the job otherwise (ml_app.jobs sends it once the transaction commits);
* recording every refusal as a RejectedUpload, and removing every received file that was not kept.

The site's upload view and the API's create call ``prepare`` and then ``submit``, and only turn the Analysis or the
UploadRejected into their response. What happens to an analysis after that is ml_app.jobs'.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from . import jobs
from .detection.stages import Stage
from .models import Analysis, Checkpoint, RejectedUpload
from .registry import active_checkpoints
from .uploads import (
    HashedUpload,
    LimitedUploadHandler,
    UploadRejected,
    ValidatedVideo,
    check_name,
    sanitise_filename,
    validate_video,
)

log = logging.getLogger(__name__)


def prepare(request: HttpRequest) -> None:
    """Install the streaming size limit; must run before anything (CSRF, authentication) reads the body."""
    request.upload_handlers = [LimitedUploadHandler(request)]


def submit(request: HttpRequest) -> Analysis:
    """Turn the upload in ``request`` into an analysis, owned by the signed-in user if there is one.

    Raises UploadRejected (already recorded) when the upload is refused. No received file outlives the call unless
    it became the analysis' video.
    """
    try:
        upload, length = receive(request)
        validated, checkpoint = validate(upload, length)
        user = getattr(request, "user", None)
        return store(validated, checkpoint, owner=user if user is not None and user.is_authenticated else None)
    except UploadRejected as error:
        record_rejection(request, error)
        raise
    finally:
        discard_leftovers(request)


def _handler(request: HttpRequest) -> LimitedUploadHandler:
    handler = request.upload_handlers[0] if request.upload_handlers else None
    if not isinstance(handler, LimitedUploadHandler):
        raise RuntimeError("submissions.prepare(request) must run before the request body is read")
    return handler


# --- receiving and validating ---------------------------------------------------------------------------------------


def receive(request: HttpRequest) -> tuple[HashedUpload, int]:
    """The received video and the sequence length asked for (the default when none is given)."""
    handler = _handler(request)
    files = request.FILES
    if handler.too_large:
        limit = settings.MAX_UPLOAD_BYTES // (1024 * 1024)
        raise UploadRejected("too_large", f"The file is larger than the {limit} MB upload limit.", status=413)
    upload = files.get("video")
    if upload is None:
        raise UploadRejected("no_file", "Choose a video file to upload.")
    check_name(upload.name)
    raw_length = request.POST.get("sequence_length") or str(settings.DEFAULT_SEQUENCE_LENGTH)
    try:
        length = int(raw_length)
    except ValueError as exc:
        raise UploadRejected(
            "invalid_sequence_length", f"'{raw_length[:20]}' is not a sequence length.", field="sequence_length"
        ) from exc
    return upload, length


def validate(upload: HashedUpload, length: int) -> tuple[ValidatedVideo, Checkpoint]:
    """An active checkpoint for ``length``, and a video that suits it."""
    checkpoints = active_checkpoints()
    if not checkpoints:
        raise UploadRejected(
            "no_checkpoint",
            "No checkpoint is active, so nothing can be analysed yet. An administrator must register one in the "
            "admin (or run manage.py sync_checkpoints).",
            status=503,
            field=None,
        )
    if length not in checkpoints:
        offered = ", ".join(str(n) for n in checkpoints)
        raise UploadRejected(
            "unknown_sequence_length",
            f"There is no active checkpoint for {length}-frame windows; choose one of: {offered}.",
            field="sequence_length",
        )
    return validate_video(upload, length), checkpoints[length]


# --- storing, reusing, queueing -------------------------------------------------------------------------------------


def store(validated: ValidatedVideo, checkpoint: Checkpoint, owner=None) -> Analysis:
    """Move the video into the analysis' own folder, then reuse an earlier result or queue the job."""
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
    target = analysis.media_dir / f"video{Path(upload.name).suffix.lower()}"
    upload.move_to(target)
    analysis.video = str(target.relative_to(settings.MEDIA_ROOT))

    earlier = _earlier_result(analysis)
    if earlier is not None and _copy_evidence(earlier, analysis):
        _reuse(analysis, earlier)
        analysis.save()
        return analysis
    analysis.save()
    jobs.enqueue_on_commit(analysis.pk, 1)
    return analysis


def _earlier_result(analysis: Analysis) -> Analysis | None:
    """The latest done analysis of the same bytes with the same checkpoint file."""
    return (
        Analysis.objects.filter(
            sha256=analysis.sha256, checkpoint_sha256=analysis.checkpoint_sha256, status=Analysis.Status.DONE
        )
        .exclude(result=None)
        .order_by("-finished_at")
        .first()
    )


def _copy_evidence(source: Analysis, target: Analysis) -> bool:
    """Copy the face crops of an earlier analysis; False if they are gone (then the video is analysed again)."""
    if not source.crops_dir.is_dir():
        return False
    shutil.copytree(source.crops_dir, target.crops_dir, dirs_exist_ok=True)
    return True


def _reuse(analysis: Analysis, earlier: Analysis) -> None:
    now = timezone.now()
    analysis.status = Analysis.Status.DONE
    analysis.stage = Stage.REUSED
    analysis.progress = 100.0
    analysis.result = earlier.result
    analysis.verdict = earlier.verdict
    analysis.fake_probability = earlier.fake_probability
    analysis.timings = {"reused": True}
    analysis.reused_from = earlier
    analysis.started_at = analysis.finished_at = now


# --- refusals and leftovers -----------------------------------------------------------------------------------------


def record_rejection(request: HttpRequest, error: UploadRejected) -> None:
    """Keep the refusal on record (admin, "Rejected uploads") with the file's name and size as far as they are known."""
    upload = request.FILES.get("video") if error.code != "too_large" else None
    if upload is not None:
        name, size = sanitise_filename(upload.name), upload.size
    else:
        announced = str(request.META.get("CONTENT_LENGTH") or "")
        name, size = "", int(announced) if announced.isdigit() else None
    RejectedUpload.objects.create(original_name=name, size_bytes=size, code=error.code, message=error.message)
    log.info("Upload rejected (%s): %s", error.code, error.message)


def discard_leftovers(request: HttpRequest) -> None:
    """Remove every file the request's upload handler stored and nobody kept (a refusal, a failed CSRF check)."""
    for handler in getattr(request, "upload_handlers", None) or []:
        for upload in getattr(handler, "uploads", []):
            upload.discard()
