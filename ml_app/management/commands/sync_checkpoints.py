"""``manage.py sync_checkpoints``: put MODEL_MAPPING's checkpoints and the models folder's files in the registry."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ml_app.registry import active_checkpoints, sync_checkpoints


class Command(BaseCommand):
    help = (
        "Register every checkpoint named in MODEL_MAPPING or found in the models folder (validated once: safe load, "
        "architecture, a forward pass; a file whose sha256 is registered already is not validated again). An "
        "operator's MODEL_MAPPING entries become active; other lengths get the best file found (trained first, then "
        "highest reported accuracy, then newest) if none is active yet. Files that are not valid checkpoints are "
        "listed with the reason."
    )

    def handle(self, *args, **options) -> None:
        registered, skipped = sync_checkpoints()
        for entry in registered:
            self.stdout.write(f"registered: {entry} [{entry.accuracy_label}]{' (active)' if entry.is_active else ''}")
        for path, reason in skipped.items():
            self.stderr.write(f"skipped {path}: {' '.join(reason.split())}")
        active = active_checkpoints()
        lengths = ", ".join(f"{n} frames: {entry.name}" for n, entry in active.items()) or "none"
        self.stdout.write(f"Active checkpoints: {lengths}")
