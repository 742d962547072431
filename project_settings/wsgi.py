"""WSGI entry point for gunicorn and other servers. Under gunicorn a request body that stalls or trickles in ends
with 408 instead of holding a thread (project_settings.slow_clients)."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from .slow_clients import BodyGuard

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project_settings.settings")
application = BodyGuard(get_wsgi_application(), settings.REQUEST_BODY_TIMEOUT, settings.REQUEST_BODY_MIN_RATE)
