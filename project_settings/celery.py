"""The Celery application: ``celery -A project_settings worker`` starts a worker."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project_settings.settings")

app = Celery("deepfake_detector")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
