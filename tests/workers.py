"""Starting real Celery worker processes against the test database, media folder and queue."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from .conftest import REPO


def test_database_url() -> str:
    """The URL of the database the tests run on (pytest-django's test database), for another process."""
    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or ""
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    at = "@" if user else ""
    host, port = config.get("HOST") or "127.0.0.1", config.get("PORT") or 5432
    return f"postgres://{user}{password}{at}{host}:{port}/{config['NAME']}"


@dataclass
class Broker:
    """Where jobs go: the default filesystem queue, or a Redis server, each with a queue name of its own."""

    url: str
    queue_dir: Path | None
    queue: str

    def env(self) -> dict[str, str]:
        env = {"CELERY_BROKER_URL": self.url, "CELERY_QUEUE": self.queue}
        if self.queue_dir is not None:
            env["QUEUE_DIR"] = str(self.queue_dir)
        return env


def _reset(app) -> None:
    """Drop the app's connections and its cached routing (queues are read from the configuration once)."""
    app.close()
    app.__dict__.pop("amqp", None)


@contextmanager
def use_broker(broker: Broker):
    """Send this process's jobs to ``broker`` for the duration."""
    from project_settings.broker import filesystem_transport_options
    from project_settings.celery import app

    saved = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}), app.conf.task_default_queue)
    _reset(app)
    app.conf.broker_url = broker.url
    if broker.queue_dir is not None:
        app.conf.broker_transport_options = filesystem_transport_options(broker.queue_dir)
    else:
        app.conf.broker_transport_options = {"visibility_timeout": 3600}
    app.conf.task_default_queue = broker.queue
    try:
        yield
    finally:
        _reset(app)
        app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_default_queue = saved


def make_broker(kind: str, tmp_path: Path) -> Broker:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        return Broker(os.environ["REDIS_URL"], None, queue)
    return Broker("filesystem://", tmp_path / "queue", queue)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies, so no worker outlives an aborted run."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class WorkerProcess:
    """``celery -A project_settings worker`` in its own process group, with its log kept for assertions."""

    def __init__(self, broker: Broker, log_path: Path, extra_env: dict[str, str] | None = None):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project_settings.settings",
            "DATABASE_URL": test_database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "MODELS_DIR": str(settings.MODELS_DIR),
            "MODEL_MAPPING": json.dumps({str(length): str(path) for length, path in settings.MODEL_MAPPING.items()}),
            "PYTHONWARNINGS": "ignore",
            "LOG_LEVEL": "INFO",
            **broker.env(),
            **(extra_env or {}),
        }
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project_settings",
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                "--hostname",
                f"{log_path.stem}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - runs before exec, touches no Python state
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool children), as a crash or the OOM killer would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@contextmanager
def running_worker(broker: Broker, log_path: Path, extra_env: dict[str, str] | None = None):
    worker = WorkerProcess(broker, log_path, extra_env)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def wait_for(predicate, timeout: float, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


# --- the web server, as run.sh starts it -----------------------------------------------------------------------------


def run_sh_gunicorn(address: str) -> list[str]:
    """The gunicorn command line of run.sh, listening on ``address`` (host:port)."""
    import shlex

    text = (REPO / "run.sh").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.strip().startswith(".venv/bin/gunicorn"))
    words = shlex.split(line.split("&")[0])
    words = [address if word == "$host:$port" else word for word in words[1:]]
    return [str(REPO / ".venv" / "bin" / "gunicorn"), *words]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WebServer:
    """run.sh's gunicorn (its very command line) on a free port, against the test database, with its own media and
    queue folders and ``extra_env``; its log (access log and errors) kept for assertions."""

    def __init__(self, log_path: Path, media_root: Path, queue_dir: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.media_root = media_root
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project_settings.settings",
            "DATABASE_URL": test_database_url(),
            "MEDIA_ROOT": str(media_root),
            "MODELS_DIR": str(settings.MODELS_DIR),
            "MODEL_MAPPING": "",
            "CELERY_BROKER_URL": "filesystem://",
            "QUEUE_DIR": str(queue_dir),
            "CELERY_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
            "PYTHONWARNINGS": "ignore",
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            run_sh_gunicorn(f"127.0.0.1:{self.port}"),
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - runs before exec, touches no Python state
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> WebServer:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/static/css/site.css", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"gunicorn not serving after {timeout} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


@contextmanager
def running_server(log_path: Path, media_root: Path, queue_dir: Path, extra_env: dict[str, str] | None = None):
    server = WebServer(log_path, media_root, queue_dir, extra_env)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def collect_static(folder: Path) -> Path:
    """What run.sh does before serving: collectstatic (fingerprinted, compressed), here into ``folder``. The API
    docs' bundle (drf-spectacular-sidecar, most of the bytes) is left out: no test server serves that page."""
    env = {**os.environ, "STATIC_ROOT": str(folder), "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "-i", "drf_spectacular_sidecar"]
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    return folder
