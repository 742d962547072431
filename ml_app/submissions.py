"""Submitting a video: the one path from an upload request to a queued (or reused) analysis, for the site and the API.

It owns every step between the request and the job queue:

* receiving: the body is parsed by uploads.LimitedUploadHandler (``prepare`` installs it before anything reads the
  body), which enforces the size limit while the bytes stream in and hashes the file on the way;
* admitting, before a byte of the body is read (``admit``): the site's per-client upload rate (the API's throttles
  run in the API), the announced length (none: 411; too large: 413, the same on the site as in the API) and the queue
  bound (``MAX_QUEUED_ANALYSES``: 503 with Retry-After);
* reading the body (``read_body``), where what Django refuses (too many fields or files, fields too large, a broken
  or stalled body) becomes a refusal through api.errors.refusal_from;
* validating: one video part, the file name, the sequence length, then (ml_app.model_choice) an active checkpoint
  for it and the video probe
  (uploads.validate_video; for a photo the active frame model and uploads.validate_photo), in that order, each
  refusal an UploadRejected with its own code, message and field;
* storing the video under the analysis' own folder (``MEDIA_ROOT/analyses/<uuid>/``), the queue bound checked again
  under a lock so that concurrent uploads cannot overfill it;
* reusing an earlier done result for the same sha256 and the same checkpoint sha256, its face crops copied;
* queueing the job otherwise (ml_app.jobs sends it once the transaction commits);
* recording refusals as RejectedUpload rows, and removing every received file that was not kept
  (``discard_leftovers``, which ml_app.middleware runs after every request, whatever its fate).

The site's upload view and the API's create call ``prepare``, ``admit`` and ``submit`` and only turn the Analysis or
the UploadRejected into their response. What happens to an analysis after that is ml_app.jobs'.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from . import analysis_events, jobs, link_submissions
from .api.errors import CLOSE, refusal_from
from .api.throttling import site_upload_wait
from .detection.stages import Stage
from .model_choice import ModelChoice, validate
from .models import Analysis, RejectedUpload
from .uploads import (
    ENVELOPE_BYTES,
    FILE_FIELDS,
    HashedUpload,
    LimitedUploadHandler,
    UploadRejected,
    ValidatedUpload,
    check_name,
    is_photo,
    sanitise_filename,
)

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"[0-9]{1,18}")  # plain ASCII digits: int() would also take '٣' and choke on 5000 digits
QUEUE_FULL_RETRY_SECONDS = 60
_QUEUE_LOCK = 0x64656570  # the PostgreSQL advisory lock that serialises the queue-bound check and the insert


def prepare(request: HttpRequest) -> None:
    """Install the streaming size limit; must run before anything (CSRF, authentication) reads the body."""
    request.upload_handlers = [LimitedUploadHandler(request)]


def admit(request: HttpRequest, site: bool = False) -> None:
    """Refuse, before a byte of the body is read, what does not need the body to be refused: on the site the
    client's upload rate, then the announced length and the queue bound. Raises UploadRejected (recorded)."""
    try:
        if site:
            _check_site_rate(request)
        _check_length(request)
        _check_queue()
    except UploadRejected as error:
        record_rejection(request, error)
        raise


def submit(request: HttpRequest) -> Analysis:
    """Turn the upload in ``request`` into an analysis, owned by the signed-in user if there is one.

    Raises UploadRejected (already recorded) when the upload is refused. No received file outlives the request
    unless it became the analysis' video (ml_app.middleware removes the rest).
    """
    try:
        user = getattr(request, "user", None)
        owner = user if user is not None and user.is_authenticated else None
        read_body(request)
        link = link_submissions.requested_link(request)
        if link:  # a link instead of a file: fetched by the worker (ml_app.link_fetch_job)
            handler = _handler(request)
            link_submissions.check_link(request, link, handler.video_parts if handler is not None else 0)
            length, ensemble = _length_and_ensemble(request)
            return link_submissions.queue_link(link, length, ensemble, owner, check_queue=_locked_queue_check)
        upload, length, ensemble = receive(request)
        validated, choice = validate(upload, length, ensemble)
        return store(validated, choice, owner=owner)
    except UploadRejected as error:
        record_rejection(request, error)
        raise


def _handler(request: HttpRequest) -> LimitedUploadHandler | None:
    handlers = getattr(request, "upload_handlers", None) or []
    handler = handlers[0] if handlers else None
    return handler if isinstance(handler, LimitedUploadHandler) else None


def number(raw: str | None) -> int | None:
    """``raw`` as a non-negative integer if it is one written in plain digits (at most 18 of them), else None."""
    text = (raw or "").strip()
    return int(text) if _NUMBER.fullmatch(text) else None


# --- admitting ------------------------------------------------------------------------------------------------------


def _check_site_rate(request: HttpRequest) -> None:
    wait = site_upload_wait(request)
    if wait is not None:
        raise UploadRejected(
            "throttled",
            f"Too many uploads from your address or account; try again in {wait} s.",
            status=429,
            field=None,
            headers={"Retry-After": str(wait)},
            record=False,
        )


def _check_length(request: HttpRequest) -> None:
    meta = request.META
    announced = str(meta.get("CONTENT_LENGTH") or "")
    if "chunked" in str(meta.get("HTTP_TRANSFER_ENCODING", "")).lower() or not announced:
        raise UploadRejected(
            "length_required",
            "Content-Length required: the upload came without one (chunked). Send the file with its length, as a "
            "browser form or curl -F video=@clip.mp4 does.",
            status=411,
            field=None,
            headers=CLOSE,
        )
    length = number(announced)
    if length is None:
        raise UploadRejected("bad_content_length", "The Content-Length header is not a number of bytes.", field=None)
    if length > settings.MAX_UPLOAD_BYTES + ENVELOPE_BYTES:
        raise _too_large()


def _too_large() -> UploadRejected:
    limit = settings.MAX_UPLOAD_BYTES // (1024 * 1024)
    return UploadRejected(
        "too_large", f"The file is larger than the {limit} MB upload limit.", status=413, headers=CLOSE
    )


def _check_queue() -> None:
    bound = settings.MAX_QUEUED_ANALYSES
    if bound and Analysis.objects.filter(status=Analysis.Status.QUEUED).count() >= bound:
        raise UploadRejected(
            "queue_full",
            f"{bound} analyses are already waiting for a worker, the most this site queues. Try again in a few "
            "minutes.",
            status=503,
            field=None,
            headers={"Retry-After": str(QUEUE_FULL_RETRY_SECONDS)},
        )


# --- receiving and validating ---------------------------------------------------------------------------------------


def read_body(request: HttpRequest) -> None:
    """Parse the body now, through the streaming handler; what Django refuses to read becomes an UploadRejected
    (recorded). The site calls this before its CSRF check, which would otherwise be the first to read the body."""
    try:
        request.POST  # noqa: B018 - parsing is the point
        request.FILES  # noqa: B018
    except Exception as exc:
        refusal = refusal_from(exc)
        if refusal is None:
            raise
        if isinstance(request, HttpRequest):
            request._mark_post_parse_error()  # the body is gone: later reads see an empty form, not the error again
        record_rejection(request, refusal)
        raise refusal from exc


def receive(request: HttpRequest) -> tuple[HashedUpload, int, str]:
    """The received video, the sequence length asked for (the default when none is given) and the ensemble asked
    for ("" for none)."""
    handler = _handler(request)
    if handler is None:
        raise RuntimeError("submissions.prepare(request) must run before the request body is read")
    read_body(request)
    if handler.too_large:
        raise _too_large()
    if handler.video_parts > 1:
        raise UploadRejected(
            "several_files",
            f"Send one video or photo per upload; this form has {handler.video_parts} files named 'video' or 'image'.",
        )
    upload = request.FILES.get("video") or request.FILES.get("image")
    if upload is None:
        field = next((name for name in FILE_FIELDS if request.POST.get(name) is not None), None)
        if field is not None:
            raise UploadRejected(
                "no_file",
                f"'{field}' came as a text field, not as a file: send the file itself (curl -F {field}=@clip.mp4).",
            )
        raise UploadRejected("no_file", "Choose a video or a photo to upload.")
    check_name(upload.name)
    return (upload, *_length_and_ensemble(request))


def _length_and_ensemble(request: HttpRequest) -> tuple[int, str]:
    raw_length = request.POST.get("sequence_length") or ""
    length = number(raw_length) if raw_length.strip() else settings.DEFAULT_SEQUENCE_LENGTH
    if length is None:
        shown = "".join(ch for ch in raw_length[:20] if ch.isprintable())
        raise UploadRejected(
            "invalid_sequence_length", f"'{shown}' is not a number of frames per window.", field="sequence_length"
        )
    return length, (request.POST.get("ensemble") or "").strip()


def chosen_length(request: HttpRequest) -> int | None:
    """The sequence length the form asked for, if its body has already been read (a refusal before the body must not
    read it just to show the form again)."""
    post = getattr(request, "_post", None)
    return number(post.get("sequence_length")) if post is not None else None


# --- storing, reusing, queueing -------------------------------------------------------------------------------------


def store(validated: ValidatedUpload, choice: ModelChoice, owner=None) -> Analysis:
    """Move the video into the analysis' own folder, then reuse an earlier result or queue the job (if the queue has
    room: checked under a lock, so that uploads arriving together cannot overfill it)."""
    upload = validated.upload
    analysis = Analysis(
        owner=owner,
        private=owner is not None and settings.PRIVATE_RESULTS,  # only an owner can keep an analysis to themself
        original_name=validated.original_name,
        size_bytes=upload.size,
        sha256=upload.sha256,
        sequence_length=choice.checkpoint.sequence_length,
        checkpoint=choice.checkpoint,
        checkpoint_sha256=choice.identity,
        ensemble=choice.ensemble,
        ensemble_name=choice.ensemble.name if choice.ensemble else "",
    )
    earlier = _earlier_result(analysis)
    stem = "photo" if is_photo(upload.name) else "video"
    target = analysis.media_dir / f"{stem}{Path(upload.name).suffix.lower()}"
    analysis.video = str(target.relative_to(settings.MEDIA_ROOT))
    try:
        with transaction.atomic():
            reusing = earlier is not None and earlier.crops_dir.is_dir()
            if not reusing:
                _lock_queue()
                _check_queue()
            analysis.media_dir.mkdir(parents=True, exist_ok=True)
            upload.move_to(target)
            if reusing and _copy_evidence(earlier, analysis):
                _reuse(analysis, earlier)
                analysis.save()
                analysis_events.emit("submitted", analysis.pk, media=analysis.media, reused=True)
                return analysis
            analysis.save()
            jobs.enqueue_on_commit(analysis.pk, 1)
            analysis_events.emit("submitted", analysis.pk, media=analysis.media, length=analysis.sequence_length)
            return analysis
    except BaseException:
        shutil.rmtree(analysis.media_dir, ignore_errors=True)  # nothing of a failed store stays on disk
        raise


def _locked_queue_check() -> None:
    _lock_queue()
    _check_queue()


def _lock_queue() -> None:
    """Serialise the queue-bound check with the inserts of concurrent uploads until the transaction ends. SQLite
    needs nothing: its transactions begin IMMEDIATE (settings), which already admits one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_QUEUE_LOCK])


def _earlier_result(analysis: Analysis) -> Analysis | None:
    """The latest done analysis of the same bytes with the same checkpoint file and number of windows (not one still
    drawing its heat maps: a copy would wait for them for ever)."""
    return (
        Analysis.objects.filter(
            sha256=analysis.sha256,
            checkpoint_sha256=analysis.checkpoint_sha256,
            max_windows=analysis.max_windows,
            status=Analysis.Status.DONE,
        )
        .exclude(result=None)
        .exclude(stage=Stage.HEATMAPS)
        .order_by("-finished_at")
        .first()
    )


def _copy_evidence(source: Analysis | None, target: Analysis) -> bool:
    """Copy the face crops of an earlier analysis; False if they are gone (then the video is analysed again)."""
    if source is None or not source.crops_dir.is_dir():
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
    """Keep the refusal on record (admin, "Rejected uploads") with the file's name and size as far as they are known,
    without reading anything more of the body. Refusals of rate limits are not recorded (a flood must not fill the
    table), nor one already recorded."""
    if not error.record or error.recorded:
        return
    error.recorded = True
    handler = _handler(request)
    upload = handler.uploads[0] if handler is not None and handler.uploads and not handler.too_large else None
    if upload is not None:
        name, size = sanitise_filename(upload.name), upload.size
    else:
        post = getattr(request, "_post", None)  # a link, if the body was read already (never read just for this)
        link = (post.get("url") or "").strip() if post is not None else ""
        name = "".join(ch for ch in link[:255] if ch.isprintable())
        size = number(str(request.META.get("CONTENT_LENGTH") or ""))
    RejectedUpload.objects.create(original_name=name, size_bytes=size, code=error.code, message=error.message)
    log.info("Upload rejected (%s): %s", error.code, error.message)


def discard_leftovers(request: HttpRequest) -> None:
    """Remove every file the request's upload handler stored and nobody kept: a refusal, a failed CSRF check, an
    exception, a client gone mid-upload (the part being written included)."""
    # The attribute, not the property: that would make default handlers for every request that never uploaded.
    for handler in getattr(request, "_upload_handlers", None) or []:
        if isinstance(handler, LimitedUploadHandler):
            handler.discard()
