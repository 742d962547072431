"""One error shape for every 4xx and 5xx the API answers, and for the site's JSON answers too:

{"error": {"code": "not_a_video", "message": "'clip.mp4' is not a readable video: ...", "fields": {"video": [...]}}}

``fields`` names the form fields an error is about (empty when it is about the request as a whole).

``refusal_from`` is the one place that turns a request-level failure (a refused upload, and what Django raises for a
body it will not read: too many fields or files, fields too large, a malformed or broken body) into a refusal with
its code, a specific message and its status; the API's exception handler, the site's views and ml_app.middleware all
answer with what it says.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.http.request import UnreadablePostError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ..uploads import UploadRejected

log = logging.getLogger(__name__)

_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
    exceptions.ValidationError: "invalid",
}


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def rejection_body(error: UploadRejected) -> dict[str, Any]:
    """A refused upload: its message, under the field it is about when there is one."""
    return error_body(error.code, error.message, {error.field: [error.message]} if error.field else None)


# The answer ends the connection: the client may still be sending a body nobody will read.
CLOSE = {"Connection": "close"}


def refusal_from(exc: BaseException) -> UploadRejected | None:
    """The refusal a request-level failure amounts to; None for anything else (a bug: a logged 500)."""
    if isinstance(exc, UploadRejected):
        return exc
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return UploadRejected(
            "fields_too_large",
            f"The form's fields other than the file hold more than {limit:g} MB; send the video as a file part named "
            "'video' (curl -F video=@clip.mp4), not as a text field.",
            status=413,
            field=None,
            headers=CLOSE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return UploadRejected(
            "too_many_fields",
            f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields; an upload needs two: video and "
            "sequence_length.",
            field=None,
        )
    if isinstance(exc, TooManyFilesSent):
        return UploadRejected(
            "too_many_files",
            f"The form has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} file parts; send one video.",
        )
    return _body_refusal(exc)


def _body_refusal(exc: BaseException) -> UploadRejected | None:
    """A body that broke off, stalled, or cannot be parsed; other requests Django calls bad."""
    if isinstance(exc, UnreadablePostError):
        if isinstance(exc.__cause__, TimeoutError):
            return UploadRejected(
                "body_timeout",
                "The upload stopped arriving (it stalled or came in too slowly) before the length it announced; "
                "send it again.",
                status=408,
                field=None,
                headers=CLOSE,
            )
        return UploadRejected(
            "incomplete_body",
            "The connection broke before the whole upload arrived; send it again.",
            field=None,
            headers=CLOSE,
        )
    if isinstance(exc, MultiPartParserError):
        return UploadRejected(
            "malformed_body", f"The multipart form cannot be read: {str(exc)[:200]}.", field=None, headers=CLOSE
        )
    if isinstance(exc, (BadRequest, SuspiciousOperation)):
        return UploadRejected("bad_request", f"The request was refused: {str(exc)[:200]}.", field=None)
    return None


def refusal_response(refusal: UploadRejected) -> JsonResponse:
    """A refusal as JSON in the one error shape, with its status and headers."""
    return JsonResponse(rejection_body(refusal), status=refusal.status, headers=refusal.headers)


def _flatten(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {
            str(key): [str(item) for item in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {"non_field_errors": [str(item) for item in (detail if isinstance(detail, list) else [detail])]}


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's handler, reshaped; anything it does not handle becomes a logged 500 in the same shape."""
    refusal = refusal_from(exc)
    if refusal is not None:
        return Response(rejection_body(refusal), status=refusal.status, headers=refusal.headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        log.exception("Unhandled error in the API", exc_info=exc)
        return Response(
            error_body("internal_error", "The server failed to handle this request; the error has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", "The request is invalid: see the field errors.", _flatten(exc.detail))
    elif isinstance(exc, exceptions.Throttled):
        wait = f" Try again in {int(exc.wait) + 1} s." if exc.wait is not None else ""
        response.data = error_body("throttled", f"Too many requests.{wait}")
    else:
        code = next((name for kind, name in _CODES.items() if isinstance(exc, kind)), "error")
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(code, str(detail))
    return response


def json_not_found(request: HttpRequest, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"There is no API endpoint at {request.path}."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("internal_error", "The server failed; the error has been logged."), status=500)
