"""``manage.py recover_analyses``: the watchdog, for cron or by hand (workers also run it on their own)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ml_app import jobs


class Command(BaseCommand):
    help = (
        "Requeue analyses whose worker stopped responding (or fail them after ANALYSIS_MAX_ATTEMPTS) and, with "
        "--resend, send every queued analysis to the queue again (duplicates are harmless)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--resend", action="store_true", help="also re-send queued analyses to the queue")

    def handle(self, *args, **options) -> None:
        counts = jobs.recover_stale()
        self.stdout.write(f"Requeued {counts['requeued']}, failed {counts['failed']} stale analyses.")
        if options["resend"]:
            self.stdout.write(f"Re-sent {jobs.requeue_waiting()} queued analyses.")
