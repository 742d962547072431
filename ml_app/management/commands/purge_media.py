"""``manage.py purge_media``: remove stale upload parts, media folders without an analysis and, with a retention
period, old analyses and their media (ml_app.retention; workers do the same when they start and hourly)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ml_app import retention


class Command(BaseCommand):
    help = (
        "Remove upload parts left in MEDIA_ROOT/incoming and media folders without an analysis (older than "
        "--incoming-age seconds), and analyses older than MEDIA_RETENTION_DAYS (or --retention-days) with their "
        "video and crops."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--retention-days", type=int, default=None, help="instead of MEDIA_RETENTION_DAYS; 0 keeps analyses"
        )
        parser.add_argument(
            "--incoming-age",
            type=float,
            default=retention.INCOMING_MAX_AGE,
            help=f"seconds after which an upload part is stale (default {retention.INCOMING_MAX_AGE})",
        )
        parser.add_argument("--dry-run", action="store_true", help="only count what would be removed")

    def handle(self, *args, **options) -> None:
        if options["retention_days"] is not None and options["retention_days"] < 0:
            raise CommandError("--retention-days must be 0 or more")
        purged = retention.purge(options["retention_days"], options["incoming_age"], options["dry_run"])
        self.stdout.write(("Would remove " if options["dry_run"] else "Removed ") + f"{purged}.")
