"""One error shape for every 4xx and 5xx the API answers, and for the site's JSON answers too:

{"error": {"code": "not_a_video", "message": "'clip.mp4' is not a readable video: ...", "fields": {"video": [...]}}}

``fields`` names the form fields an error is about (empty when it is about the request as a whole).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
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


def _flatten(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {
            str(key): [str(item) for item in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {"non_field_errors": [str(item) for item in (detail if isinstance(detail, list) else [detail])]}


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's handler, reshaped; anything it does not handle becomes a logged 500 in the same shape."""
    if isinstance(exc, UploadRejected):
        return Response(rejection_body(exc), status=exc.status)
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
