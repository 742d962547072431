"""Liveness and readiness for load balancers and orchestrators.

``/health/`` answers 200 as long as the process serves requests (no I/O). ``/health/ready/`` runs the checks below
(django-health-check's check classes, run one after another in the request's thread) and answers 200 when all pass,
503 otherwise, in JSON naming each check with "ok" or what is wrong in plain words. Answers carry no secrets, paths,
host names or exception texts: a failing check says only what does not work.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.exceptions import ServiceUnavailable

from . import worker_presence
from .registry import active_checkpoints


@dataclasses.dataclass
class Broker(HealthCheck):
    """The job queue takes messages: the queue folder is writable (the default, no server), or the broker answers."""

    def run(self) -> None:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            _writable(Path(options["data_folder_in"]), "the job queue's folder is not writable")
            return
        from project_settings.celery import app

        try:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=3)
        except Exception as exc:
            raise ServiceUnavailable("the job queue's broker does not answer") from exc


@dataclasses.dataclass
class MediaFolder(HealthCheck):
    """Uploads can be stored."""

    def run(self) -> None:
        _writable(Path(settings.MEDIA_ROOT), "the media folder is not writable")


@dataclasses.dataclass
class Worker(HealthCheck):
    """Some worker reported within ANALYSIS_STALE_SECONDS: queued analyses will be analysed."""

    def run(self) -> None:
        if not worker_presence.live_workers():
            raise ServiceUnavailable(f"no worker has reported in the last {settings.ANALYSIS_STALE_SECONDS} s")


@dataclasses.dataclass
class DefaultCheckpoint(HealthCheck):
    """The length the upload form offers first has an active checkpoint whose file is present."""

    def run(self) -> None:
        if settings.DEFAULT_SEQUENCE_LENGTH not in active_checkpoints():
            raise ServiceUnavailable(
                f"no active checkpoint for the default length of {settings.DEFAULT_SEQUENCE_LENGTH} frames"
            )


def _writable(folder: Path, message: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".health-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise ServiceUnavailable(message) from exc


# name in the answer -> (the check, what to say when it fails for a reason it does not name)
READINESS: dict[str, tuple[HealthCheck, str]] = {
    "database": (Database(), "the database does not answer"),
    "broker": (Broker(), "the job queue does not take messages"),
    "media": (MediaFolder(), "the media folder is not writable"),
    "worker": (Worker(), "the workers' heartbeats cannot be read"),
    "checkpoint": (DefaultCheckpoint(), "the registry cannot be read"),
}
# Checks that need the database say nothing more when it is down.
NEEDS_DATABASE = ("worker", "checkpoint")


def readiness() -> dict[str, str]:
    """Each check's name with "ok" or why it fails."""
    answers: dict[str, str] = {}
    for name, (check, fallback) in READINESS.items():
        if name in NEEDS_DATABASE and answers.get("database", "ok") != "ok":
            answers[name] = "not checked: the database does not answer"
            continue
        try:
            check.run()  # type: ignore[unused-coroutine]  # these checks are synchronous
        except ServiceUnavailable as exc:
            answers[name] = exc.message if name != "database" else fallback
        except Exception:
            answers[name] = fallback
        else:
            answers[name] = "ok"
    return answers


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    """Liveness: this process answers. No database, no files."""
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every check passes, 503 naming the ones that fail."""
    checks = readiness()
    failing = sorted(name for name, answer in checks.items() if answer != "ok")
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks}
    response = JsonResponse(body, status=503 if failing else 200)
    # A probe asks every few seconds: a 503 here is an answer, not a server error for Django's error log.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
