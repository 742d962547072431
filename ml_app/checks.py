"""System checks of the deployment (``manage.py check --deploy``): the generated development key must never reach
production unnoticed."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def secret_key_from_the_environment(app_configs=None, **kwargs) -> list[Error]:
    if getattr(settings, "SECRET_KEY_FROM_ENVIRONMENT", True):
        return []
    return [
        Error(
            "DJANGO_SECRET_KEY is not set: the site runs with the key generated for development in "
            f"{settings.STATE_DIR / 'secret_key'}.",
            hint="Set DJANGO_SECRET_KEY to a long random string kept secret (README, 'Production').",
            id="ml_app.E001",
        )
    ]
