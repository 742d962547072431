"""Operators' endpoints: liveness, readiness (with a real worker, and with the database gone), Prometheus metrics
from the database every process writes to, JSON logs, and requests for a host this site does not serve."""

from __future__ import annotations

import json
import logging
import re
import signal
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from ml_app.models import Analysis, ServiceCounter, WorkerHeartbeat

from .workers import WebServer, make_broker, running_worker, use_broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_rates():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready/")
    return response.status_code, response.json()


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus' text format."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if wanted else ''} (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"no sample {name}{{{wanted}}} in:\n{text}"
    return float(found.group(1))


def test_liveness_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readiness_and_metrics_with_a_real_worker(client, active_checkpoint, one_face_video, tmp_path, settings):
    settings.DEFAULT_SEQUENCE_LENGTH = 10
    settings.ANALYSIS_STALE_SECONDS = 6  # the worker reports every 2 s; a killed one is noticed within 6 s
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["worker"], body
    assert "no worker has reported" in body["checks"]["worker"]
    broker = make_broker("filesystem", tmp_path)
    extra = {"LOG_FORMAT": "json", "ANALYSIS_STALE_SECONDS": "6"}
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log", extra) as worker:
        wait_for(lambda: ready(client)[0] == 200, 30, what="the worker's first heartbeat")
        status, body = ready(client)
        assert body == {
            "status": "ok",
            "failing": [],
            "checks": dict.fromkeys(["database", "broker", "media", "worker", "checkpoint"], "ok"),
        }
        response = client.post(
            "/analyses/",
            {"video": SimpleUploadedFile("clip.mp4", one_face_video.read_bytes()), "sequence_length": "10"},
            HTTP_ACCEPT="application/json",
        )
        assert response.status_code == 202
        analysis = Analysis.objects.get(pk=response.json()["id"])
        wait_for(lambda: (analysis.refresh_from_db(), analysis.is_finished)[1], 120, what="the analysis")
        assert analysis.status == Analysis.Status.DONE, analysis.error_message
        # The web process (this one) wrote the submission, the worker the result and its stage times.
        text = client.get("/metrics").content.decode()
        assert metric(text, "deepfake_analyses_submitted_total") == 1
        assert metric(text, "deepfake_analyses_done_total") == 1
        assert metric(text, "deepfake_verdicts_total", verdict=analysis.verdict) == 1
        assert metric(text, "deepfake_queue_length") == 0
        assert metric(text, "deepfake_stage_duration_seconds_count", stage="network") == 1
        assert metric(text, "deepfake_stage_duration_seconds_sum", stage="total") == pytest.approx(
            analysis.timings["total"]
        )
        assert metric(text, "deepfake_stage_duration_seconds_bucket", le="+Inf", stage="total") == 1
        assert metric(text, "deepfake_model_load_seconds_count") == 1
        assert metric(text, "deepfake_workers_live") == 1
        events = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
        done = [event for event in events if event.get("event") == "analysis_done"]
        assert done and done[0]["analysis"] == str(analysis.pk) and done[0]["verdict"] == analysis.verdict
        # The worker dies (SIGKILL, as the OOM killer would): its heartbeat grows old, and readiness says so.
        worker.kill()
        wait_for(lambda: ready(client)[0] == 503, 30, what="readiness to notice the dead worker")
        status, body = ready(client)
        assert body["failing"] == ["worker"] and "no worker has reported in the last 6 s" in body["checks"]["worker"]
        assert metric(client.get("/metrics").content.decode(), "deepfake_workers_live") == 0


def test_a_worker_that_stops_cleanly_removes_its_heartbeat(active_checkpoint, tmp_path):
    broker = make_broker("filesystem", tmp_path)
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log") as worker:
        wait_for(WorkerHeartbeat.objects.exists, 30, what="the heartbeat")
        worker.process.send_signal(signal.SIGTERM)  # the main process only: Celery's warm shutdown
        worker.process.wait(timeout=30)
    assert not WorkerHeartbeat.objects.exists(), worker.log()[-2000:]


def test_readiness_names_a_missing_checkpoint_and_a_silent_worker(client, site_dirs, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_SECONDS + 1)
    WorkerHeartbeat.objects.create(name="killed@host:1", started_at=long_ago, seen_at=long_ago)
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["checkpoint", "worker"]
    assert (
        body["checks"]["checkpoint"] == f"no active checkpoint for the default length of "
        f"{settings.DEFAULT_SEQUENCE_LENGTH} frames"
    )
    assert str(site_dirs) not in json.dumps(body)


def test_readiness_when_the_database_is_unreachable(tmp_path):
    missing = tmp_path / "gone" / "db.sqlite3"  # its folder does not exist: SQLite cannot open it
    server = WebServer(
        tmp_path / "web.log", tmp_path / "media", tmp_path / "queue", {"DATABASE_URL": f"sqlite:///{missing}"}
    )
    try:

        def answer(path):
            try:
                with urllib.request.urlopen(server.url + path, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
            except OSError:
                return None

        live = wait_for(lambda: answer("/health/"), 60, what="gunicorn")
        assert live[0] == 200
        status, text = answer("/health/ready/")
        body = json.loads(text)
        assert status == 503 and "database" in body["failing"], body
        assert body["checks"]["database"] == "the database does not answer"
        assert body["checks"]["worker"] == "not checked: the database does not answer"
        assert "gone" not in text and "sqlite" not in text.lower(), "no paths or engine details"
    finally:
        server.stop()


def test_metrics_access(client, settings):
    settings.METRICS_ALLOWED_IPS, settings.METRICS_TOKEN = [], ""
    assert client.get("/metrics").status_code == 404, "off with neither setting"
    settings.METRICS_ALLOWED_IPS, settings.METRICS_TOKEN = ["10.0.0.0/8"], "s3cret"
    assert client.get("/metrics").status_code == 403, "127.0.0.1 is not in 10.0.0.0/8"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_a_disallowed_host_gets_a_plain_400_counted_and_not_logged(client, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(2):
        response = client.get("/", HTTP_HOST="evil.example")
        assert response.status_code == 400
        assert "evil.example" not in response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    assert ServiceCounter.objects.get(name="disallowed_host").value == 2
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR or "evil" in r.getMessage()]
    text = client.get("/metrics").content.decode()
    assert metric(text, "deepfake_disallowed_host_requests_total") == 2


def test_refusals_are_counted_by_reason(client, site_dirs):
    from ml_app.models import RejectedUpload

    RejectedUpload.objects.create(code="too_large", message="x")
    RejectedUpload.objects.create(code="too_large", message="x")
    RejectedUpload.objects.create(code="not_a_video", message="x")
    text = client.get("/metrics").content.decode()
    assert metric(text, "deepfake_uploads_refused_total", reason="too_large") == 2
    assert metric(text, "deepfake_uploads_refused_total", reason="not_a_video") == 1
