"""Which workers are alive: each worker's watchdog writes its heartbeat row every ANALYSIS_STALE_SECONDS / 3, idle
or busy, and removes it when the worker stops cleanly. The readiness check and the metrics read the rows; a worker
killed outright leaves a row that simply grows old."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import WorkerHeartbeat


def beat(name: str) -> None:
    """Record that worker ``name`` is alive now."""
    now = timezone.now()
    if not WorkerHeartbeat.objects.filter(name=name).update(seen_at=now):
        WorkerHeartbeat.objects.update_or_create(name=name, defaults={"seen_at": now, "started_at": now})


def gone(name: str) -> None:
    """A worker stopping cleanly: it no longer counts."""
    WorkerHeartbeat.objects.filter(name=name).delete()


def live_workers() -> list[WorkerHeartbeat]:
    """Workers seen within ANALYSIS_STALE_SECONDS, the same bound the watchdog gives a running analysis."""
    cutoff = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_SECONDS)
    return list(WorkerHeartbeat.objects.filter(seen_at__gte=cutoff))


def forget_old(days: int = 7) -> int:
    """Rows of workers not seen for ``days`` (killed ones) are dropped."""
    deleted, _ = WorkerHeartbeat.objects.filter(seen_at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
