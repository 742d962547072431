#!/usr/bin/env bash
# Sets up the project on a fresh machine: a virtual environment in .venv with pinned wheels (nothing is compiled),
# the database, and, unless --dev, an untrained checkpoint if none exists yet, so the app has something to run.
#   ./setup.sh         the app
#   ./setup.sh --dev   the app plus test and lint tools, Debian's chromium for the browser test and nginx-light for
#                      the reverse-proxy test (as root)
# Re-running is cheap: packages are reinstalled only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")"

dev=0
[ "${1:-}" = "--dev" ] && dev=1

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    python=$candidate; break
  fi
done
[ -n "$python" ] || { echo "setup.sh: Python 3.11 or newer is needed" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
requirements=requirements.txt
[ "$dev" = 1 ] && requirements=requirements-dev.txt
stamp=".venv/.installed-$(cat "$requirements" requirements.txt requirements-nodeps.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing Python packages ($requirements) into .venv ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
  touch "$stamp"
fi

if [ "$dev" = 1 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && [ "$(id -u)" = 0 ] &&
   command -v apt-get >/dev/null 2>&1; then
  # tests/test_bad_input.py runs the README's nginx configuration in front of the site (skipped without nginx).
  echo "Installing Debian's nginx-light for the reverse-proxy test ..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null; } ||
    echo "note: nginx-light could not be installed; the reverse-proxy test will be skipped" >&2
fi

if [ "$dev" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  # The browser test drives Debian's Chromium with Playwright (Playwright's own browser download is not used).
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser test ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "note: the browser test needs Debian's chromium: sudo apt-get install chromium" >&2
  fi
fi

export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::UserWarning:face_recognition_models}"
.venv/bin/python manage.py migrate --noinput >/dev/null
.venv/bin/python manage.py createcachetable >/dev/null  # the shared cache of the request rates (settings: CACHES)
if [ "$dev" = 0 ]; then
  .venv/bin/python manage.py create_checkpoint --if-missing
  .venv/bin/python manage.py sync_checkpoints
fi
echo "Set-up done."
