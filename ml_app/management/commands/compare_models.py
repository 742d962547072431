"""Print how each challenger compares with its champion (the figures the admin shows)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ml_app.challenger_stats import compare, lines


class Command(BaseCommand):
    help = "Per champion/challenger pair: analyses, verdict agreement, score correlation, mean time, disagreements."

    def handle(self, *args, **options) -> None:
        for line in lines(compare()):
            self.stdout.write(line)
