"""The Celery application: ``celery -A project_settings worker`` starts a worker."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project_settings.settings")

app = Celery("deepfake_detector")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

if os.environ.get("LOG_FORMAT") == "json":
    from celery.signals import setup_logging

    @setup_logging.connect
    def _keep_django_logging(**_kwargs) -> None:
        """With LOG_FORMAT=json the worker logs through Django's LOGGING (one JSON object per line) instead of
        Celery's own format: a receiver of this signal tells Celery to leave logging alone."""
