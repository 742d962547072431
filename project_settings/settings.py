"""Django settings, all read from the environment (see README, "Configuration").

Defaults suit one machine with nothing else installed: SQLite in ``var/``, uploads in ``var/media``, DEBUG off.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from ml_app.detection.calibration import Thresholds
from ml_app.detection.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_WINDOWS,
    IMAGE_SUFFIXES,
    SHIPPED_DEFAULT_LENGTH,
    VIDEO_EXTENSIONS,
    shipped_ensembles,
    shipped_mapping,
)
from ml_app.detection.errors import ConfigurationError
from ml_app.detection.heatmaps import DEFAULT_WINDOWS_PER_PERSON, parse_mode
from ml_app.detection.model_mapping import split_mapping

from .broker import filesystem_transport_options
from .env import env_bool, env_int, env_json, env_list, env_path, env_probability, env_str, secret_key

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
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ml_app",
    "model_creation",
]

MIDDLEWARE = [
    # A Host not in ALLOWED_HOSTS: a plain 400, counted, before anything else reads the header (ml_app/host_guard.py).
    "ml_app.host_guard.HostGuardMiddleware",
    # Outermost: after every request, whatever its fate, no upload part that was not kept stays on disk; request-level
    # failures (a body Django refuses to read, a refused upload) are answered in the one error shape.
    "ml_app.middleware.RequestFailureMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
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
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share the file: wait for locks instead of failing, take write locks up front,
    # and let readers work while a writer commits. Tests use a file too, so a real worker process can see it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(STATE_DIR / "test-db.sqlite3")}
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
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # whitenoise serves static files with far-future caching; collectstatic fingerprints and compresses them
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# Uploaded videos and face crops: outside static/, served only through views that check the analysis' URL.
# With several worker machines this folder must be shared storage (NFS, a mounted volume) seen at the same path.
MEDIA_ROOT = env_path("MEDIA_ROOT", STATE_DIR / "media")
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# --- production -----------------------------------------------------------------------------------------------------
# Checklist (README, "Production"): DJANGO_SECRET_KEY set, DJANGO_ALLOWED_HOSTS your host names, DJANGO_HTTPS=true
# behind TLS, DATABASE_URL on PostgreSQL, CELERY_BROKER_URL on Redis or RabbitMQ, MEDIA_ROOT on shared storage;
# `manage.py check --deploy` then passes.
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", HTTPS)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "ml_app.views.csrf_failure"  # the one error shape for scripts, the form with the reason for people
# Set only from the environment: `check --deploy` reports an error while the generated development key is in use.
SECRET_KEY_FROM_ENVIRONMENT = bool(os.environ.get("DJANGO_SECRET_KEY"))
BEHIND_PROXY = env_bool("DJANGO_BEHIND_PROXY", False)

# --- operators: logs and metrics (README, "Operating the site") ----------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (analysis events carry their fields: event, analysis, status, ...).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "ml_app.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    # One line per analysis event (submitted, started, done, failed), whatever LOG_LEVEL says of the rest.
    "loggers": {"ml_app.events": {"level": env_str("ANALYSIS_EVENT_LOG_LEVEL", "INFO")}},
}
# /metrics (Prometheus): open to these addresses or networks, and to callers sending "Authorization: Bearer
# <METRICS_TOKEN>"; with both empty the endpoint is off.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
METRICS_TOKEN = env_str("METRICS_TOKEN")
try:
    import ipaddress

    for _network in METRICS_ALLOWED_IPS:
        ipaddress.ip_network(_network, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {exc}") from exc

# --- detection ------------------------------------------------------------------------------------------------------
# Checkpoints: MODEL_MAPPING ({"20": "models/file.pt"}, JSON) names them per sequence length; lengths it leaves out are
# found in MODELS_DIR, where each checkpoint declares its own length.
MODELS_DIR = env_path("MODELS_DIR", BASE_DIR / "models")
# The default models shipped in models/ (see models/README.md), where present; MODEL_MAPPING replaces them all
# (MODEL_MAPPING="" maps nothing, leaving every length to the models folder).
# Names other than lengths are ensembles: lists of lengths or files whose calibrated answers are averaged
# ({"seeds": ["models/s0.pt", "models/s1.pt"], "all-lengths": [10, 20, 40]}); by default the shipped lengths together.
DEFAULT_MODEL_MAPPING = shipped_mapping(BASE_DIR)
try:
    MODEL_MAPPING, MODEL_ENSEMBLES = split_mapping(
        env_json("MODEL_MAPPING", {}) if "MODEL_MAPPING" in os.environ else shipped_ensembles(BASE_DIR)
    )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
if "MODEL_MAPPING" not in os.environ:
    MODEL_MAPPING = dict(DEFAULT_MODEL_MAPPING)
DEFAULT_SEQUENCE_LENGTH = env_int("DEFAULT_SEQUENCE_LENGTH", SHIPPED_DEFAULT_LENGTH)
DETECTION_MAX_WINDOWS = env_int("DETECTION_MAX_WINDOWS", DEFAULT_MAX_WINDOWS)
DETECTION_BATCH_SIZE = env_int("DETECTION_BATCH_SIZE", DEFAULT_BATCH_SIZE)
DETECTION_DEVICE = env_str("DETECTION_DEVICE", "auto")
# Heat maps (Grad-CAM, made after the verdict): "flagged" for the windows of FAKE and INCONCLUSIVE people, "all" for
# every scored window, "off" for none (ml_app/detection/heatmaps.py).
try:
    DETECTION_HEATMAPS = parse_mode(env_str("DETECTION_HEATMAPS", "flagged"))
except ConfigurationError as exc:
    raise ImproperlyConfigured(f"DETECTION_HEATMAPS: {exc}") from exc
# With "flagged": how many of each flagged person's most suspicious windows get a map (0: all of them). The site
# shows the verdict first and draws the maps after it.
DETECTION_HEATMAP_WINDOWS = env_int("DETECTION_HEATMAP_WINDOWS", DEFAULT_WINDOWS_PER_PERSON)
# The worker's PyTorch threads (ml_app/detection/threads.py): 0 leaves PyTorch's default (one per core).
DETECTION_TORCH_THREADS = env_int("DETECTION_TORCH_THREADS", 0)
DETECTION_INTEROP_THREADS = env_int("DETECTION_INTEROP_THREADS", 1)
# The heat maps' PyTorch threads (0: as the analysis): one thread drew them 4.5x faster on a loaded 2-core machine.
DETECTION_HEATMAP_THREADS = env_int("DETECTION_HEATMAP_THREADS", 1)
# Verdicts: FAKE at or above FAKE_THRESHOLD, REAL at or below REAL_THRESHOLD (calibrated fake probability of the most
# suspicious person), INCONCLUSIVE in between. Unset, each checkpoint's own thresholds apply (chosen on its validation
# data; see models/README.md); set, they replace them for every checkpoint.
FAKE_THRESHOLD = env_probability("FAKE_THRESHOLD")
REAL_THRESHOLD = env_probability("REAL_THRESHOLD")
if FAKE_THRESHOLD is not None and REAL_THRESHOLD is not None:
    try:
        Thresholds(FAKE_THRESHOLD, REAL_THRESHOLD, "settings")  # the one rule for a pair of thresholds
    except ValueError as exc:
        raise ImproperlyConfigured(f"FAKE_THRESHOLD and REAL_THRESHOLD: {exc}") from exc
# Content Credentials (C2PA) are read from every upload and validated offline against their own certificates; a
# signer is called trusted only when it chains to a certificate in this PEM bundle of trust anchors. Unset: no trust
# list (signature and hashes are still checked). Checked here, so a bad file stops the start, not an analysis.
C2PA_TRUST_ANCHORS = str(env_path("C2PA_TRUST_ANCHORS", Path())) if env_str("C2PA_TRUST_ANCHORS") else ""
if C2PA_TRUST_ANCHORS:
    from ml_app.detection.errors import ConfigurationError
    from ml_app.detection.provenance import load_trust_anchors

    try:
        load_trust_anchors(C2PA_TRUST_ANCHORS)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"C2PA_TRUST_ANCHORS: {exc.message}") from exc

# --- uploads --------------------------------------------------------------------------------------------------------
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_MB", 200) * 1024 * 1024  # enforced while the upload streams in
MAX_VIDEO_SECONDS = env_int("MAX_VIDEO_SECONDS", 600)
ALLOWED_VIDEO_EXTENSIONS = env_list("ALLOWED_VIDEO_EXTENSIONS", list(VIDEO_EXTENSIONS))
# Photos (scored by the active frame model, sequence length 1): a fixed allow-list of formats Pillow decodes, and a
# pixel limit checked before decoding (a decompression bomb is refused, not unpacked).
ALLOWED_IMAGE_EXTENSIONS = [suffix.lstrip(".") for suffix in IMAGE_SUFFIXES]
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_MEGAPIXELS", DEFAULT_MAX_PIXELS // 1_000_000) * 1_000_000
# Links (issue 31): a URL instead of a file, fetched by the worker through the one guarded fetcher (ml_app.fetching).
# URL_FETCH_ALLOW_PRIVATE lets it reach loopback, private and link-local addresses (tests, intranet installs):
# anyone who can submit a link can then make the server fetch from your internal network. Cloud-metadata
# addresses stay refused. URL_PAGE_EXTRACTORS: yt-dlp's extractors for pages ("default": every site it knows).
URL_ANALYSIS = env_bool("URL_ANALYSIS", True)
URL_FETCH_ALLOW_PRIVATE = env_bool("URL_FETCH_ALLOW_PRIVATE", False)
URL_FETCH_TIMEOUT = env_int("URL_FETCH_TIMEOUT", 300)  # seconds for the whole fetch: the page and the file
URL_FETCH_MIN_RATE = env_int("URL_FETCH_MIN_RATE", 10 * 1024)  # bytes a second, averaged over 30 s, or it is cut
URL_PAGE_EXTRACTORS = env_list("URL_PAGE_EXTRACTORS", ["default"])
# Waiting analyses beyond this are refused (503, Retry-After) instead of queued; 0 lifts the bound.
MAX_QUEUED_ANALYSES = env_int("MAX_QUEUED_ANALYSES", 100)
# A signed-in user's new analyses are private (only they open the page and its files) unless they say otherwise.
PRIVATE_RESULTS = env_bool("PRIVATE_RESULTS", False)
# Analyses (with their video and crops) and records of refused uploads older than this are deleted by the worker
# and by `manage.py purge_media`; 0 keeps them until deleted. Stale upload parts in MEDIA_ROOT/incoming and media
# folders without an analysis are removed whatever this says.
MEDIA_RETENTION_DAYS = env_int("MEDIA_RETENTION_DAYS", 0)
# Under gunicorn (run.sh, project_settings/gunicorn.py): a request body that sends nothing for this many seconds, or
# arrives slower than REQUEST_BODY_MIN_RATE bytes per second on average, ends with 408 instead of holding a thread.
REQUEST_BODY_TIMEOUT = env_int("REQUEST_BODY_TIMEOUT", 20)
REQUEST_BODY_MIN_RATE = env_int("REQUEST_BODY_MIN_RATE", 8 * 1024)

# --- the job queue --------------------------------------------------------------------------------------------------
# Default: kombu's filesystem transport in STATE_DIR/queue, so web server and worker need no broker server. Set
# CELERY_BROKER_URL (redis://host:6379/0, amqp://user:pass@host:5672//) to share the work between machines.
QUEUE_DIR = env_path("QUEUE_DIR", STATE_DIR / "queue")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_transport_options(QUEUE_DIR)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")  # web servers and workers must agree on it
CELERY_TASK_IGNORE_RESULT = True  # results live in the database, in the Analysis row
CELERY_TASK_ACKS_LATE = True  # a job whose worker dies is not lost with it...
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # ...and a busy worker does not hoard queued jobs
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 1)  # the network uses every core already
CELERY_TASK_SOFT_TIME_LIMIT = env_int("ANALYSIS_TIME_LIMIT", 1800)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A running analysis whose worker has not reported for this long is presumed dead: it is queued again, up to
# ANALYSIS_MAX_ATTEMPTS in all, then marked failed with the reason.
ANALYSIS_STALE_SECONDS = env_int("ANALYSIS_STALE_SECONDS", 90)
ANALYSIS_MAX_ATTEMPTS = env_int("ANALYSIS_MAX_ATTEMPTS", 2)

# --- rates and the REST API -----------------------------------------------------------------------------------------
# The cache the request rates live in, shared by every web process: by default a table in the database (created by
# `manage.py createcachetable`, which setup.sh and run.sh run; the tests' database gets it too), so that the rates
# hold across processes and machines that share the database; Redis with CACHE_URL (redis://host:6379/1).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("CACHE_URL")}
    if env_str("CACHE_URL")
    else {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "deepfake_detector_cache",
        "OPTIONS": {"MAX_ENTRIES": 100_000},  # culling would forget histories and let callers past their rate
    }
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",  # first: anonymous callers get 401, not 403
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["ml_app.api.throttling.UserBurstThrottle", "ml_app.api.throttling.UploadThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_RATE", "120/min"),
        "uploads": env_str("API_UPLOAD_RATE", "20/hour"),  # per user, through the API or the site
        "anonymous_uploads": env_str("SITE_UPLOAD_RATE", "10/hour"),  # per address, anonymous uploads on the site
    },
    # Client addresses: REMOTE_ADDR, or the address the trusted proxies in front put into X-Forwarded-For.
    "NUM_PROXIES": env_int("DJANGO_NUM_PROXIES", 1 if BEHIND_PROXY else 0),
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 20),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ml_app.api.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Multipart only: DRF's FormParser reads a urlencoded body whole into memory, past DATA_UPLOAD_MAX_MEMORY_SIZE.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.MultiPartParser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Deepfake detector API",
    "DESCRIPTION": "Upload videos for asynchronous deepfake analysis and read the results. Authenticate with "
    "`Authorization: Token <key>` (tokens are created in the admin or with `manage.py create_api_token`).",
    "VERSION": "1.1.0",  # 1.1: the result once, inside result (verdict, fake_probability, timings), with summary
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from the installed package: no CDN, no network
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "ProvenanceStateEnum": "ml_app.api.serializers.PROVENANCE_STATES",
        "ProvenanceTrustEnum": "ml_app.api.serializers.PROVENANCE_TRUST",
    },
}
