"""gunicorn's settings, for run.sh and production: ``gunicorn -c project_settings/gunicorn.py project_settings.wsgi``
(options given on the command line, such as --bind, win).

Threaded workers: a thread per request being handled, none for a connection that has sent nothing yet (gunicorn
waits for those in its poller) and none for long for a body that stalls (project_settings.slow_clients). WEB_WORKERS
and WEB_THREADS change the counts; put a buffering reverse proxy in front in production (README, "Production")."""

import os

wsgi_app = "project_settings.wsgi"
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = 300  # a worker silent this long is restarted (uploads are validated in the request: probing takes time)
graceful_timeout = 30
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
