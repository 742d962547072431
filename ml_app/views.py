"""The site: upload page, result page with its polling endpoint, the analysis' media, delete and retry.

Thin views: submissions does the upload's work, jobs the analysis' states, api.serializers describes an analysis
(the same JSON as the API) and api.errors shapes the JSON errors. An analysis is reached only through its UUID;
nothing here lists analyses (the admin does). ``refused`` answers every refusal of the site (a refused upload, a
failed CSRF check, a body Django will not read, via ml_app.middleware too): the error shape for scripts, the upload
form with the message next to its field (or another page) for people.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import analysis_report, jobs, submissions
from .api.errors import refusal_response
from .api.serializers import describe
from .detection.defaults import FRAME_MODEL_LENGTH
from .detection.heatmaps import figures as heatmap_figures
from .file_responses import ranged_file_response
from .models import Analysis
from .registry import active_checkpoints, active_ensembles
from .uploads import UploadRejected

_CROP_NAME = re.compile(r"^[A-Za-z0-9_]+\.(jpg|png)$")  # crops and thumbnails (JPEG), heat maps (PNG)
_FORM_FIELDS = ("video", "url", "sequence_length", "ensemble")  # the upload form's fields that show their own errors


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
        "ensembles": active_ensembles() if checkpoints else {},
        "default_length": default,
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_upload_mb": settings.MAX_UPLOAD_BYTES // (1024 * 1024),
        "max_video_seconds": settings.MAX_VIDEO_SECONDS,
        "extensions": settings.ALLOWED_VIDEO_EXTENSIONS,
        "image_extensions": settings.ALLOWED_IMAGE_EXTENSIONS,
        "photo_model": checkpoints.get(FRAME_MODEL_LENGTH),
        "url_analysis": settings.URL_ANALYSIS,
        "accept": ",".join(f".{e}" for e in [*settings.ALLOWED_VIDEO_EXTENSIONS, *settings.ALLOWED_IMAGE_EXTENSIONS])
        + ",video/*",
        "error": error if error is not None and error.field not in _FORM_FIELDS else None,
        "field_errors": {error.field: error.message} if error is not None and error.field in _FORM_FIELDS else {},
    }


@require_GET
def upload_page(request: HttpRequest) -> HttpResponse:
    return render(request, "ml_app/upload.html", upload_context())


def refused(request: HttpRequest, error: UploadRejected) -> HttpResponse:
    """A refusal, as the client wants it, with its status and headers (Retry-After, Connection)."""
    if _wants_json(request) or request.path.startswith("/api/"):
        return refusal_response(error)
    match = request.resolver_match
    if match is not None and match.view_name == "ml_app:create":
        context = upload_context(error, submissions.chosen_length(request))
        response = render(request, "ml_app/upload.html", context, status=error.status)
    else:
        response = render(request, "refused.html", {"error": error}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the form's security token was missing or wrong (the upload it came with is removed)."""
    return refused(
        request,
        UploadRejected(
            "csrf_failed",
            "The form's security token (CSRF) is missing or does not match; reload the page and send it again.",
            status=403,
            field=None,
            record=False,
        ),
    )


def _no_csrf_cookie(request: HttpRequest) -> bool:
    """Whether the CSRF check will fail for want of its cookie (Django's test client switches the check off with
    the same attribute as here)."""
    return settings.CSRF_COOKIE_NAME not in request.COOKIES and not getattr(request, "_dont_enforce_csrf_checks", False)


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; csrf_protect below checks it
@require_POST
def create_analysis(request: HttpRequest) -> HttpResponse:
    submissions.prepare(request)
    try:
        submissions.admit(request, site=True)  # the client's rate, the announced length, the queue: before the body
        if _no_csrf_cookie(request):  # refused by the CSRF check whatever the body says: it is not read
            return csrf_failure(request)
        submissions.read_body(request)  # through the streaming limit, before the CSRF check reads it
        return _create_analysis(request)
    except UploadRejected as error:
        return refused(request, error)  # what is left of the upload goes in ml_app.middleware


@csrf_protect
def _create_analysis(request: HttpRequest) -> HttpResponse:
    analysis = submissions.submit(request)
    if _wants_json(request):
        return _private(JsonResponse(describe(analysis, request), status=202))
    return redirect("ml_app:analysis", analysis.pk)


def _analysis_or_404(analysis_id) -> Analysis:
    return get_object_or_404(Analysis.objects.select_related("checkpoint"), pk=analysis_id)


@require_GET
def analysis_page(request: HttpRequest, analysis_id) -> HttpResponse:
    analysis = _analysis_or_404(analysis_id)
    state = describe(analysis, request)
    context = {"analysis": analysis, "state": state, "heatmaps": _heatmaps(analysis)}
    return _private(render(request, "ml_app/result.html", context))


def _heatmaps(analysis: Analysis) -> dict | None:
    """The result page's heat maps (drawn by the server: the API's representation does not carry them), and the
    note that says why there are none where there could have been; None before the result or without maps."""
    info = (analysis.result or {}).get("heatmaps") if analysis.status == Analysis.Status.DONE else None
    if not info:
        return None
    crops_url = reverse("ml_app:analysis", args=[analysis.pk]) + "crops/"
    found = heatmap_figures(analysis.result, crops_url)
    return {"figures": found, "note": info.get("note")} if found or info.get("note") else None


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
    return _private(ranged_file_response(request, path, "image/png" if name.endswith(".png") else "image/jpeg"))


@require_GET
def analysis_report_pdf(request: HttpRequest, analysis_id) -> HttpResponse:
    """The analysis' report as a PDF; an analysis without a verdict (running, failed) is answered 409 with why."""
    analysis = _analysis_or_404(analysis_id)
    refusal = analysis_report.not_ready(analysis)
    if refusal is not None:
        return _private(refused(request, refusal))
    return _private(analysis_report.pdf_response(analysis))


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
