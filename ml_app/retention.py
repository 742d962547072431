"""What the media folder keeps, and for how long.

* Upload parts in ``MEDIA_ROOT/incoming/``: a request removes its own (ml_app.middleware); only a web process killed
  mid-upload leaves one behind. Parts older than INCOMING_MAX_AGE (longer than any upload takes) are removed.
* Media folders under ``MEDIA_ROOT/analyses/`` whose analysis does not exist (a store that failed half-way, a row
  deleted behind the site's back) are removed once as old as that too: the leftovers of failed uploads always go.
* Analyses older than MEDIA_RETENTION_DAYS (off by default), with their video and crops, and the records of refused
  uploads as old, are deleted; a running analysis is left to finish.

The worker does this when it starts and hourly while it runs (ml_app.tasks); ``manage.py purge_media`` does it from
cron or by hand.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from .models import Analysis, RejectedUpload

log = logging.getLogger(__name__)

INCOMING_MAX_AGE = 6 * 3600  # seconds; a 200 MB upload at 100 kB/s takes about 35 minutes


@dataclass(frozen=True)
class Purged:
    """What one purge removed."""

    incoming: int = 0  # stale upload parts
    orphans: int = 0  # media folders without an analysis
    analyses: int = 0  # analyses past the retention period (their media with them)
    rejections: int = 0  # records of refused uploads past the retention period

    def __str__(self) -> str:
        return (
            f"{self.incoming} stale upload part(s), {self.orphans} media folder(s) without an analysis, "
            f"{self.analyses} analysis(es) and {self.rejections} refused-upload record(s) past retention"
        )


def purge(
    retention_days: int | None = None, incoming_max_age: float = INCOMING_MAX_AGE, dry_run: bool = False
) -> Purged:
    """Remove what is stale (see the module docstring); ``retention_days`` defaults to MEDIA_RETENTION_DAYS (0: off)."""
    days = settings.MEDIA_RETENTION_DAYS if retention_days is None else retention_days
    media = Path(settings.MEDIA_ROOT)
    cutoff = time.time() - incoming_max_age
    result = Purged(
        incoming=_purge_incoming(media / "incoming", cutoff, dry_run),
        orphans=_purge_orphans(media / "analyses", cutoff, dry_run),
        **(_purge_expired(days, dry_run) if days > 0 else {}),
    )
    if any(vars(result).values()):
        log.info("Purged %s%s", result, " (dry run)" if dry_run else "")
    return result


def _old_entries(folder: Path, cutoff: float) -> list[Path]:
    if not folder.is_dir():
        return []
    old = []
    for entry in folder.iterdir():
        try:
            if entry.lstat().st_mtime < cutoff:
                old.append(entry)
        except FileNotFoundError:  # removed meanwhile by the request that wrote it
            continue
    return old


def _purge_incoming(folder: Path, cutoff: float, dry_run: bool) -> int:
    stale = [entry for entry in _old_entries(folder, cutoff) if entry.is_file() or entry.is_symlink()]
    if not dry_run:
        for entry in stale:
            entry.unlink(missing_ok=True)
    return len(stale)


def _purge_orphans(folder: Path, cutoff: float, dry_run: bool) -> int:
    candidates: list[tuple[uuid.UUID | None, Path]] = []
    for entry in _old_entries(folder, cutoff):
        try:
            candidates.append((uuid.UUID(entry.name), entry))
        except ValueError:
            candidates.append((None, entry))  # not an analysis' folder at all
    ids = [key for key, _ in candidates if key is not None]
    known = set(Analysis.objects.filter(pk__in=ids).values_list("pk", flat=True))
    orphans = [entry for key, entry in candidates if key not in known]
    if not dry_run:
        for entry in orphans:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return len(orphans)


def _purge_expired(days: int, dry_run: bool) -> dict[str, int]:
    cutoff = timezone.now() - timedelta(days=days)
    analyses = Analysis.objects.filter(created_at__lt=cutoff).exclude(status=Analysis.Status.RUNNING)
    rejections = RejectedUpload.objects.filter(created_at__lt=cutoff)
    counts = {"analyses": analyses.count(), "rejections": rejections.count()}
    if not dry_run:
        for analysis in analyses.iterator():
            analysis.delete()  # one by one: each takes its media folder with it (models._remove_media)
        rejections.delete()
    return counts
