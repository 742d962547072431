"""Django project settings package; importing it makes the Celery app available to Django and to workers."""

from .celery import app as celery_app

__all__ = ("celery_app",)
