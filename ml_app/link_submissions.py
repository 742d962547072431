"""Submitting a link instead of a file (the ``url`` field of the upload form and of POST /api/v1/analyses/).

The request only checks what it can check at once: links are allowed here (URL_ANALYSIS), exactly one of a file or a
link came, the link is http(s) with a host, and the host's addresses are ones the fetcher may reach (the worker
checks them again when it connects: an answer that changes in between changes nothing). Nothing is downloaded in
the request: the analysis is queued without a file and the worker's "Fetching the video" stage
(ml_app.link_fetch_job) downloads it. Rates and the queue bound are the uploads' (ml_app.submissions).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest

from . import analysis_events, jobs
from .detection.errors import FetchError
from .fetching import check_url
from .models import Analysis
from .uploads import FILE_FIELDS, UploadRejected, sanitise_filename

MAX_URL_LENGTH = 2000


def requested_link(request: HttpRequest) -> str:
    """The link the form or API call sent ("" for none)."""
    return (request.POST.get("url") or "").strip()


def check_link(request: HttpRequest, link: str, file_parts: int) -> None:
    """Refuse (UploadRejected on the ``url`` field) a link this site will not fetch, before anything is queued."""
    if not settings.URL_ANALYSIS:
        raise UploadRejected(
            "url_disabled", "This site analyses uploaded files only; links are switched off here.", field="url"
        )
    if file_parts or any(request.FILES.get(name) for name in FILE_FIELDS):
        raise UploadRejected("file_and_url", "Send either a file or a link, not both.", field="url")
    if len(link) > MAX_URL_LENGTH:
        raise UploadRejected("invalid_url", f"The link is longer than {MAX_URL_LENGTH} characters.", field="url")
    try:
        check_url(link, allow_private=settings.URL_FETCH_ALLOW_PRIVATE)
    except FetchError as error:
        raise UploadRejected(error.code, error.message, field="url") from error


def link_name(link: str) -> str:
    """What the analysis is called until the file is fetched: the link's last path part, else its host."""
    parts = urlsplit(link)
    tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return sanitise_filename(tail or parts.hostname or "link")


def queue_link(link: str, length: int, ensemble: str, owner=None, check_queue=None) -> Analysis:
    """Queue the analysis of ``link``: no file yet, the sequence length and ensemble asked for kept for the worker,
    which chooses the checkpoint once it knows whether the link held a video or a photo."""
    analysis = Analysis(
        owner=owner,
        original_name=link_name(link),
        video="",
        sha256="",
        sequence_length=length,
        ensemble_name=ensemble,
        source_url=link,
    )
    with transaction.atomic():
        if check_queue is not None:
            check_queue()
        analysis.save()
        jobs.enqueue_on_commit(analysis.pk, 1)
    analysis_events.emit("submitted", analysis.pk, media="link", length=length)
    return analysis
