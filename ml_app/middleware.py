"""The request-level guarantees of the site and the API, in one middleware (the outermost):

* nothing of an upload is left behind: after every request, whatever its fate (answered, refused, failed the CSRF
  check, raised, the client gone mid-upload), every upload part that did not become an analysis' video is removed
  (submissions.discard_leftovers);
* a body Django refuses to read gets its specific answer in the one error shape (api.errors.refusal_from) instead
  of a bare "Bad Request (400)" and a traceback in the log: the body of a POST is read here, before the CSRF check
  would read it, except for the views that read their own (csrf_exempt: the upload view and the API, which install
  the streaming upload handler first);
* a refusal a site view raises is answered the same way (views.refused: the error shape for scripts, the page for
  people). The API answers its own through its exception handler, with the same refusals.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from . import submissions, views
from .api.errors import refusal_from


class RequestFailureMiddleware:
    """See the module docstring."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            submissions.discard_leftovers(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None
        try:
            request.POST  # noqa: B018 - parsing is the point
        except Exception as exc:
            refusal = refusal_from(exc)
            if refusal is None:
                raise
            request._mark_post_parse_error()
            return views.refused(request, refusal)
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        refusal = refusal_from(exception)
        return None if refusal is None else views.refused(request, refusal)
