"""The site: upload page, result page with its polling endpoint, the analysis' media, delete and retry.

An analysis is reached only through its UUID; nothing here lists analyses (the admin does).
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import jobs
from .file_responses import ranged_file_response
from .models import Analysis, RejectedUpload
from .registry import active_checkpoints
from .serializers import analysis_state
from .uploads import HashedUpload, LimitedUploadHandler, UploadRejected, check_name, sanitise_filename, validate_video

log = logging.getLogger(__name__)

_CROP_NAME = re.compile(r"^[A-Za-z0-9_]+\.jpg$")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _private(response: HttpResponse) -> HttpResponse:
    """Analysis pages and media: never cached by shared caches, never indexed."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def upload_context(error: UploadRejected | None = None, chosen: int | None = None) -> dict:
    checkpoints = active_checkpoints()
    default = chosen if chosen in checkpoints else settings.DEFAULT_SEQUENCE_LENGTH
    if default not in checkpoints and checkpoints:
        default = next(iter(checkpoints))
    return {
        "checkpoints": checkpoints,
        "default_length": default,
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
        "max_video_seconds": settings.MAX_VIDEO_SECONDS,
        "extensions": settings.ALLOWED_VIDEO_EXTENSIONS,
        "accept": ",".join(f".{e}" for e in settings.ALLOWED_VIDEO_EXTENSIONS) + ",video/*",
        "error": error,
    }


@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(request, "ml_app/upload.html", upload_context())


def receive_upload(request: HttpRequest) -> tuple[HashedUpload, int]:
    """Parse the multipart body with the streaming size limit; returns the stored file and the sequence length.

    The caller must have installed a LimitedUploadHandler before the body was read.
    """
    handler = request.upload_handlers[0]
    files = request.FILES
    if isinstance(handler, LimitedUploadHandler) and handler.too_large:
        limit = settings.MAX_UPLOAD_BYTES // (1024 * 1024)
        raise UploadRejected("too_large", f"The file is larger than the {limit} MB upload limit.", status=413)
    upload = files.get("video")
    if upload is None:
        raise UploadRejected("no_file", "Choose a video file to upload.")
    try:
        check_name(upload.name)
        raw_length = request.POST.get("sequence_length") or str(settings.DEFAULT_SEQUENCE_LENGTH)
        try:
            length = int(raw_length)
        except ValueError as exc:
            raise UploadRejected(
                "invalid_sequence_length", f"'{raw_length[:20]}' is not a sequence length.", field="sequence_length"
            ) from exc
    except UploadRejected:
        upload.discard()
        raise
    return upload, length


def start_analysis(upload: HashedUpload, length: int, owner=None) -> Analysis:
    """Validate the stored upload for ``length`` and create (and queue) its analysis, owned by ``owner`` if given."""
    try:
        checkpoints = active_checkpoints()
        if not checkpoints:
            raise UploadRejected(
                "no_checkpoint",
                "No checkpoint is active, so nothing can be analysed yet. An administrator must register one in the "
                "admin (or run manage.py sync_checkpoints).",
                status=503,
            )
        if length not in checkpoints:
            offered = ", ".join(str(n) for n in checkpoints)
            raise UploadRejected(
                "unknown_sequence_length",
                f"There is no active checkpoint for {length}-frame windows; choose one of: {offered}.",
                field="sequence_length",
            )
        validated = validate_video(upload, length)
    except UploadRejected:
        upload.discard()
        raise
    return jobs.create_analysis(validated, checkpoints[length], owner=owner)


def record_rejection(request: HttpRequest, error: UploadRejected) -> None:
    upload = request.FILES.get("video") if error.code != "too_large" else None
    name = sanitise_filename(upload.name) if upload is not None else ""
    size = upload.size if upload is not None else request.META.get("CONTENT_LENGTH")
    RejectedUpload.objects.create(
        original_name=name, size_bytes=int(size) if size else None, code=error.code, message=error.message
    )
    log.info("Upload rejected (%s): %s", error.code, error.message)


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; csrf_protect below checks it
@require_POST
def create_analysis(request: HttpRequest) -> HttpResponse:
    request.upload_handlers = [LimitedUploadHandler(request)]
    return _create_analysis(request)


@csrf_protect
def _create_analysis(request: HttpRequest) -> HttpResponse:
    try:
        upload, length = receive_upload(request)
        analysis = start_analysis(upload, length, owner=request.user if request.user.is_authenticated else None)
    except UploadRejected as error:
        record_rejection(request, error)
        if _wants_json(request):
            return JsonResponse(
                {"error": {"code": error.code, "message": error.message, "field": error.field}}, status=error.status
            )
        chosen = request.POST.get("sequence_length", "")
        context = upload_context(error, int(chosen) if chosen.isdigit() else None)
        return render(request, "ml_app/upload.html", context, status=error.status)
    if _wants_json(request):
        return _private(JsonResponse(analysis_state(analysis), status=202))
    return redirect("ml_app:analysis", analysis.pk)


def _analysis_or_404(analysis_id) -> Analysis:
    return get_object_or_404(Analysis.objects.select_related("checkpoint"), pk=analysis_id)


@require_GET
def analysis_page(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    return _private(render(request, "ml_app/result.html", {"analysis": analysis, "state": analysis_state(analysis)}))


@require_GET
def analysis_status(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    watched = Analysis.objects.filter(pk=analysis.pk)
    if analysis.status == Analysis.Status.RUNNING and any(jobs.recover_stale(watched).values()):
        analysis.refresh_from_db()
    return _private(JsonResponse(analysis_state(analysis)))


@require_GET
def analysis_video(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    if not analysis.video_path.is_file():
        raise Http404("video no longer stored")
    return _private(ranged_file_response(request, analysis.video_path))


@require_GET
def analysis_crop(request: HttpRequest, analysis_id, name: str) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    path = analysis.crops_dir / name
    if not _CROP_NAME.match(name) or not path.is_file():
        raise Http404("no such crop")
    return _private(ranged_file_response(request, path, "image/jpeg"))


@require_http_methods(["POST"])
def delete_analysis(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    name = analysis.original_name
    analysis.delete()
    if _wants_json(request):
        return JsonResponse({"deleted": str(analysis_id)})
    messages.success(request, f"The analysis of '{name}' and its video were deleted.")
    return redirect("ml_app:upload")


@require_http_methods(["POST"])
def retry_analysis(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    if analysis.status != Analysis.Status.FAILED:
        messages.info(request, "Only a failed analysis can be retried.")
    elif not analysis.video_path.is_file():
        messages.error(request, "The video of this analysis is no longer stored; upload it again.")
    else:
        jobs.retry(analysis)
    return redirect("ml_app:analysis", analysis.pk)
