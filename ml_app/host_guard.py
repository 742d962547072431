"""Requests for a host name this site does not serve (not in DJANGO_ALLOWED_HOSTS): a plain 400 that does not repeat
the header back, counted for the metrics, and no traceback in the log (scanners send these by the thousand)."""

from __future__ import annotations

import logging

from django.core.exceptions import DisallowedHost
from django.db import DatabaseError
from django.db.models import F
from django.http import HttpRequest, HttpResponse

from .metrics import DISALLOWED_HOST
from .models import ServiceCounter

log = logging.getLogger(__name__)

MESSAGE = "Bad Request: this server does not answer for that host name.\n"


def count_disallowed_host() -> None:
    try:
        if not ServiceCounter.objects.filter(name=DISALLOWED_HOST).update(value=F("value") + 1):
            ServiceCounter.objects.get_or_create(name=DISALLOWED_HOST)
            ServiceCounter.objects.filter(name=DISALLOWED_HOST).update(value=F("value") + 1)
    except DatabaseError:
        log.warning("Could not count a request for a disallowed host (the database does not answer)")


class HostGuardMiddleware:
    """The outermost middleware: checks the Host header before anything else reads it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost:
            count_disallowed_host()
            log.info("Refused a request for a host name not in DJANGO_ALLOWED_HOSTS")
            return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
