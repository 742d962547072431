"""The model_creation application: its management commands preprocess datasets, train, evaluate and export."""

from django.apps import AppConfig


class ModelCreationConfig(AppConfig):
    """Dataset preprocessing, training, evaluation and export commands."""

    name = "model_creation"
    verbose_name = "Model creation"
    default_auto_field = "django.db.models.BigAutoField"
