"""The site: upload page, result page with its polling endpoint, the analysis' media, delete and retry.

Thin views: submissions does the upload's work, jobs the analysis' states, api.serializers describes an analysis
(the same JSON as the API) and api.errors shapes the JSON errors. An analysis is reached only through its UUID;
nothing here lists analyses (the admin does).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import jobs, submissions
from .api.errors import rejection_body
from .api.serializers import describe
from .file_responses import ranged_file_response
from .models import Analysis
from .registry import active_checkpoints
from .uploads import UploadRejected

_CROP_NAME = re.compile(r"^[A-Za-z0-9_]+\.jpg$")
_FORM_FIELDS = ("video", "sequence_length")  # the upload form's fields that show their own errors


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _private(response: HttpResponse) -> HttpResponse:
    """Analysis pages and media: never cached by shared caches, never indexed."""
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def upload_context(error: UploadRejected | None = None, chosen: int | None = None) -> dict:
    """The upload form; a refusal is shown next to its field, or above the button when it concerns no field."""
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
        "error": error if error is not None and error.field not in _FORM_FIELDS else None,
        "field_errors": {error.field: error.message} if error is not None and error.field in _FORM_FIELDS else {},
    }


@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(request, "ml_app/upload.html", upload_context())


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; csrf_protect below checks it
@require_POST
def create_analysis(request: HttpRequest) -> HttpResponse:
    submissions.prepare(request)
    try:
        return _create_analysis(request)
    finally:
        submissions.discard_leftovers(request)  # e.g. the body was read for a CSRF check that then failed


@csrf_protect
def _create_analysis(request: HttpRequest) -> HttpResponse:
    try:
        analysis = submissions.submit(request)
    except UploadRejected as error:
        if _wants_json(request):
            return JsonResponse(rejection_body(error), status=error.status)
        chosen = request.POST.get("sequence_length", "")
        context = upload_context(error, int(chosen) if chosen.isdigit() else None)
        return render(request, "ml_app/upload.html", context, status=error.status)
    if _wants_json(request):
        return _private(JsonResponse(describe(analysis, request), status=202))
    return redirect("ml_app:analysis", analysis.pk)


def _analysis_or_404(analysis_id) -> Analysis:
    return get_object_or_404(Analysis.objects.select_related("checkpoint"), pk=analysis_id)


@require_GET
def analysis_page(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    state = describe(analysis, request)
    return _private(render(request, "ml_app/result.html", {"analysis": analysis, "state": state}))


@require_GET
def analysis_status(request: HttpRequest, analysis_id) -> HttpResponse:
    """What the result page polls: the API's description of the analysis, after the stale-worker check."""
    analysis = jobs.refresh_if_stale(_analysis_or_404(analysis_id))
    return _private(JsonResponse(describe(analysis, request)))


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
