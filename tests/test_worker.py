"""The job queue with real Celery worker processes: the whole lifecycle on the default (serverless) broker and on Redis
when REDIS_URL is set, the checkpoint loaded once per worker, and workers killed in the middle of a job."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ml_app.models import Analysis

from . import media
from .workers import make_broker, running_worker, use_broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_rates():
    """Upload rates live in the shared cache, which a transactional test does not roll back: each test starts
    with none spent."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


BROKERS = [
    "filesystem",
    pytest.param(
        "redis", marks=pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (CI sets it)")
    ),
]


def upload(client, path) -> Analysis:
    response = client.post(
        reverse("ml_app:create"),
        {"video": SimpleUploadedFile(path.name, path.read_bytes()), "sequence_length": "10"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 202, response.content
    return Analysis.objects.get(pk=response.json()["id"])


def finished(analysis: Analysis, timeout: float = 120) -> Analysis:
    def check():
        analysis.refresh_from_db()
        return analysis.is_finished

    wait_for(check, timeout, what=f"analysis {analysis.pk} to finish")
    return analysis


def leftovers(media_root: Path) -> dict[str, Path]:
    """What a killed web process leaves in the media folder: upload parts and a media folder without an analysis,
    stale (older than retention.INCOMING_MAX_AGE) or fresh (an upload still arriving)."""
    from ml_app.retention import INCOMING_MAX_AGE

    (media_root / "incoming").mkdir(parents=True, exist_ok=True)
    found = {
        "stale part": media_root / "incoming" / "upload-old.part",
        "fresh part": media_root / "incoming" / "upload-new.part",
        "stale orphan": media_root / "analyses" / str(uuid.uuid4()),
    }
    found["stale part"].write_bytes(b"x" * 1000)
    found["fresh part"].write_bytes(b"x" * 1000)
    found["stale orphan"].mkdir(parents=True)
    (found["stale orphan"] / "video.mp4").write_bytes(b"x")
    old = time.time() - INCOMING_MAX_AGE - 60
    for path in (found["stale part"], found["stale orphan"]):
        os.utime(path, (old, old))
    return found


@pytest.mark.parametrize("kind", BROKERS)
def test_job_lifecycle_through_a_real_worker(
    kind, client, active_checkpoint, one_face_video, two_face_video, tmp_path, settings
):
    broker = make_broker(kind, tmp_path)
    left = leftovers(Path(settings.MEDIA_ROOT))
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log") as worker:
        assert not left["stale part"].exists() and not left["stale orphan"].exists(), "purged when the worker started"
        assert left["fresh part"].exists(), "an upload still arriving is left alone"
        left["fresh part"].unlink()
        first = upload(client, one_face_video)
        seen = set()

        def done():
            first.refresh_from_db()
            seen.add(first.status)
            return first.is_finished

        wait_for(done, 120, interval=0.1, what="the first analysis")
        assert first.status == Analysis.Status.DONE, first.error_message + worker.log()[-2000:]
        assert "running" in seen or "queued" in seen
        assert first.attempts == 1 and first.progress == 100.0 and first.verdict in ("REAL", "FAKE")
        assert first.result["windows_scored"] == 4 and first.result["checkpoint"]["sha256"] == active_checkpoint.sha256
        assert str(worker.process.pid) not in first.worker, "the job ran in the worker's pool process"
        assert first.timings["checkpoint_cached"] is False and first.timings["checkpoint_load"] > 0
        assert (first.crops_dir / "person0.jpg").is_file()
        assert first.started_at <= first.finished_at

        second = finished(upload(client, two_face_video))
        assert second.status == Analysis.Status.DONE, second.error_message
        assert second.timings["checkpoint_cached"] is True, "the worker loaded the checkpoint once and reused it"
        assert second.worker == first.worker
        assert all(len(w["tracks"]) == 2 for w in second.result["windows"])

        state = client.get(f"/analyses/{second.pk}/status").json()
        assert state["status"] == "done" and state["result"]["verdict"] == second.verdict


@pytest.fixture
def long_video(media_dir):
    """Long enough (with 40 windows) that a worker can be killed while it is busy with it."""
    return media.face_video(media_dir / "long.mp4", frames=400, width=320, height=240, faces=((60, 20, 180),))


SLOW = {"DETECTION_MAX_WINDOWS": "40", "ANALYSIS_STALE_SECONDS": "3"}


def _wait_until_busy(analysis: Analysis) -> None:
    def busy():
        analysis.refresh_from_db()
        return analysis.status == Analysis.Status.RUNNING and analysis.stage == "windows" and analysis.progress > 10

    wait_for(busy, 120, interval=0.1, what="the worker to be busy")


def test_a_worker_killed_mid_job_leads_to_a_retry(client, active_checkpoint, long_video, tmp_path):
    broker = make_broker("filesystem", tmp_path)
    with use_broker(broker):
        with running_worker(broker, tmp_path / "first.log", SLOW) as first_worker:
            analysis = upload(client, long_video)
            _wait_until_busy(analysis)
            first_worker.kill()
        time.sleep(4)  # longer than ANALYSIS_STALE_SECONDS: the dead worker's heartbeat is stale now
        analysis.refresh_from_db()
        assert analysis.status == Analysis.Status.RUNNING, "nobody has noticed yet"
        with running_worker(broker, tmp_path / "second.log", SLOW) as second_worker:
            finished(analysis, timeout=180)
            assert analysis.status == Analysis.Status.DONE, analysis.error_message + second_worker.log()[-2000:]
    assert analysis.attempts == 2
    assert len(analysis.result["windows"]) == 40


def test_a_worker_killed_on_the_last_attempt_leads_to_a_clear_failure(client, active_checkpoint, long_video, tmp_path):
    broker = make_broker("filesystem", tmp_path)
    settings_env = {**SLOW, "ANALYSIS_MAX_ATTEMPTS": "1"}
    with use_broker(broker):
        with running_worker(broker, tmp_path / "first.log", settings_env) as first_worker:
            analysis = upload(client, long_video)
            _wait_until_busy(analysis)
            first_worker.kill()
        time.sleep(4)
        with running_worker(broker, tmp_path / "second.log", settings_env):
            finished(analysis, timeout=60)
    assert analysis.status == Analysis.Status.FAILED and analysis.error_code == "worker_lost"
    assert "stopped responding 1 times" in analysis.error_message and "retry" in analysis.error_message
    assert analysis.video_path.is_file(), "the upload is kept for a retry"


def test_a_pool_process_killed_mid_job_is_recovered_by_the_running_worker(
    client, active_checkpoint, long_video, tmp_path
):
    broker = make_broker("filesystem", tmp_path)
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log", SLOW) as worker:
        analysis = upload(client, long_video)
        _wait_until_busy(analysis)
        children = subprocess.run(
            ["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        busy_child = analysis.worker.rsplit(":", 1)[1]
        assert busy_child in children
        os.kill(int(busy_child), 9)  # the out-of-memory killer picks the pool process, the worker survives
        finished(analysis, timeout=180)
        assert analysis.status == Analysis.Status.DONE, analysis.error_message + worker.log()[-3000:]
        assert analysis.attempts == 2 and analysis.worker != f"{analysis.worker.split(':')[0]}:{busy_child}"


def test_the_readme_python_example_works(live_server, active_checkpoint, django_user_model, one_face_video, tmp_path):
    """The README's ten-line client, run as written against a live server and a real worker."""
    import re
    import sys

    from rest_framework.authtoken.models import Token

    from .conftest import REPO

    readme = (REPO / "README.md").read_text()
    code = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", readme, re.S).group(1)
    assert len(code.strip().splitlines()) <= 11
    token = Token.objects.create(user=django_user_model.objects.create_user("reader")).key
    code = (
        code.replace("http://127.0.0.1:8000/api/v1", live_server.url + "/api/v1")
        .replace("your-token", token)
        .replace('"clip.mp4"', repr(str(one_face_video)))
        .replace('"sequence_length": 20', '"sequence_length": 10')
    )
    script = tmp_path / "client.py"
    script.write_text(code)
    broker = make_broker("filesystem", tmp_path)
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log"):
        output = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, check=True)
    status, verdict, error = output.stdout.split(maxsplit=2)
    assert status == "done" and verdict in ("REAL", "FAKE") and error.strip() == "None"
