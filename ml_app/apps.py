"""The ml_app application: the site, the API, the job queue and the admin around the detection core."""

from django.apps import AppConfig


class MlAppConfig(AppConfig):
    """Uploads, analyses, results, API and admin; the detection core lives in ``ml_app.detection``."""

    name = "ml_app"
    verbose_name = "Deepfake detection"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the deployment checks
