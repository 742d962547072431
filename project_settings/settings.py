"""Django settings, all read from the environment (see README, "Configuration").

Defaults suit one machine with nothing else installed: SQLite in ``var/``, uploads in ``var/media``, DEBUG off.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from .env import env_bool, env_int, env_json, env_list, env_path, env_str, secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = env_path("STATE_DIR", BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = secret_key(STATE_DIR)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ml_app",
    "model_creation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project_settings.urls"
WSGI_APPLICATION = "project_settings.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{STATE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", STATE_DIR / "staticfiles")
# Uploaded videos and face crops: outside static/, never served as static files.
MEDIA_ROOT = env_path("MEDIA_ROOT", STATE_DIR / "media")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}

# --- detection -------------------------------------------------------------------------------------------------------
# Checkpoints: MODEL_MAPPING ({"20": "models/file.pt"}, JSON) names them per sequence length; lengths it leaves out are
# found in MODELS_DIR, where each checkpoint declares its own length.
MODELS_DIR = env_path("MODELS_DIR", BASE_DIR / "models")
MODEL_MAPPING: dict[int, str] = {int(k): v for k, v in env_json("MODEL_MAPPING", {}).items()}
DEFAULT_SEQUENCE_LENGTH = env_int("DEFAULT_SEQUENCE_LENGTH", 20)
DETECTION_MAX_WINDOWS = env_int("DETECTION_MAX_WINDOWS", 8)
DETECTION_BATCH_SIZE = env_int("DETECTION_BATCH_SIZE", 2)
DETECTION_DEVICE = env_str("DETECTION_DEVICE", "auto")
