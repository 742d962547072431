"""The REST API: every endpoint and its failure cases, one error format, throttling, and the OpenAPI schema."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.serializers.json import DjangoJSONEncoder
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ml_app import jobs
from ml_app.api.serializers import AnalysisSerializer
from ml_app.api.throttling import UploadThrottle, UserBurstThrottle
from ml_app.detection.stages import Stage
from ml_app.models import Analysis, RejectedUpload

from .conftest import REPO

pytestmark = pytest.mark.django_db

SCHEMA_FILE = REPO / "ml_app" / "api" / "openapi.yaml"


@pytest.fixture(autouse=True)
def fresh_throttles():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password-1")


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def post_video(client, content: bytes, name: str = "clip.mp4", length: int | str | None = 10):
    data = {"video": SimpleUploadedFile(name, content, content_type="video/mp4")}
    if length is not None:
        data["sequence_length"] = str(length)
    return client.post("/api/v1/analyses/", data, format="multipart")


def assert_error(response, status: int, code: str, message: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    if message:
        assert message in body["error"]["message"]
    return body["error"]


def run_inline(analysis_id: str) -> Analysis:
    from ml_app.tasks import analyze_video_task

    analyze_video_task.run(analysis_id, 1)
    return Analysis.objects.get(pk=analysis_id)


# --- authentication -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/analyses/", "/api/v1/checkpoints/", f"/api/v1/analyses/{'0' * 8}-0000-4000-8000-{'0' * 12}/"]
)
def test_anonymous_callers_get_401(path, active_checkpoint):
    response = APIClient().get(path)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_bad_token_gets_401(active_checkpoint):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(client.get("/api/v1/analyses/"), 401, "authentication_failed", "Invalid token")


def test_session_authentication_works_too(active_checkpoint, alice):
    client = APIClient()
    client.login(username="alice", password="alice-password-1")
    assert client.get("/api/v1/checkpoints/").status_code == 200


def test_create_api_token_command(db):
    out = StringIO()
    call_command("create_api_token", "carol", "--create-user", stdout=out)
    key = out.getvalue().strip()
    assert Token.objects.get(user__username="carol").key == key
    again = StringIO()
    call_command("create_api_token", "carol", stdout=again)
    assert again.getvalue().strip() == key
    with pytest.raises(Exception, match="pass --create-user"):
        call_command("create_api_token", "nobody")


# --- creating analyses ----------------------------------------------------------------------------------------------


def test_upload_returns_202_with_the_analysis(active_checkpoint, alice, one_face_video):
    response = post_video(token_client(alice), one_face_video.read_bytes())
    assert response.status_code == 202
    body = response.json()
    analysis = Analysis.objects.get(pk=body["id"])
    assert analysis.owner == alice and body["status"] == "queued" and body["sequence_length"] == 10
    assert body["url"].endswith(f"/api/v1/analyses/{analysis.pk}/") and response["Location"] == body["url"]
    assert body["page_url"].endswith(f"/analyses/{analysis.pk}/") and body["result"] is None
    assert body["checkpoint"]["name"] == "tiny_10_frames"


@pytest.mark.parametrize(
    ("name", "content", "length", "status", "code", "message"),
    [
        ("notes.txt", b"text", 10, 415, "unsupported_type", "has .txt"),
        ("notes.mp4", b"plain text, not a video\n" * 30, 10, 400, "not_a_video", "text file"),
        ("empty.mp4", b"", 10, 400, "empty_file", "is empty"),
        ("clip.mp4", None, 60, 400, "unknown_sequence_length", "choose one of: 10"),
        ("clip.mp4", None, "twenty", 400, "invalid_sequence_length", "not a number of frames per window"),
    ],
)
def test_bad_uploads_get_the_same_messages_as_the_page(
    active_checkpoint, alice, one_face_video, name, content, length, status, code, message
):
    body = one_face_video.read_bytes() if content is None else content
    error = assert_error(post_video(token_client(alice), body, name=name, length=length), status, code, message)
    field = "sequence_length" if code.endswith("sequence_length") else "video"
    assert error["fields"] == {field: [error["message"]]}
    assert RejectedUpload.objects.filter(code=code).exists()
    assert not Analysis.objects.exists()


def test_upload_over_the_limit(active_checkpoint, alice, one_face_video, settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    assert_error(post_video(token_client(alice), one_face_video.read_bytes()), 413, "too_large")


def test_upload_without_a_file_or_as_json(active_checkpoint, alice):
    client = token_client(alice)
    assert_error(client.post("/api/v1/analyses/", {"sequence_length": "10"}, format="multipart"), 400, "no_file")
    assert_error(client.post("/api/v1/analyses/", {"video": "x"}, format="json"), 415, "unsupported_media_type")


def test_upload_with_no_active_checkpoint(site_dirs, alice, one_face_video):
    error = assert_error(post_video(token_client(alice), one_face_video.read_bytes()), 503, "no_checkpoint")
    assert error["fields"] == {}


def test_the_site_answers_refusals_in_the_api_error_shape(active_checkpoint, alice, client, one_face_video):
    """One error shape: the site's JSON answer to a refused upload is the API's, field names included."""
    for length in (60, "twenty"):
        api = post_video(token_client(alice), one_face_video.read_bytes(), length=length)
        site = client.post(
            "/analyses/",
            {"video": SimpleUploadedFile("clip.mp4", one_face_video.read_bytes()), "sequence_length": str(length)},
            HTTP_ACCEPT="application/json",
        )
        assert site.status_code == api.status_code == 400
        assert site.json() == api.json()
        assert list(site.json()["error"]["fields"]) == ["sequence_length"]


# --- reading, listing, deleting -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_full_result_once_done(active_checkpoint, alice, one_face_video):
    client = token_client(alice)
    created = post_video(client, one_face_video.read_bytes()).json()
    run_inline(created["id"])
    body = client.get(created["url"]).json()
    assert body["status"] == "done" and body["progress"] == 100.0
    result = body["result"]
    assert result["verdict"] in ("REAL", "FAKE") and 0 <= result["confidence"] <= 1
    assert not {"verdict", "fake_probability", "timings"} & set(body), "the result once, inside result"
    summary = result["summary"]
    assert summary["verdict"] == result["verdict"] and summary["why"] is None
    assert summary["coverage"].startswith("Looked at 4 windows of 10 frames") and summary["coverage"].endswith(
        "video; 1 person."
    )
    assert f"Person 1 has a raw score of {result['fake_probability']:.3f}" in summary["meaning"], "untrained: raw"
    assert summary["text"].startswith(summary["headline"])
    window = result["windows"][0]
    assert {"start_time", "end_time", "fake_probability", "tracks", "status"} <= set(window)
    track = window["tracks"][0]
    assert len(track["boxes"]) == 10 and track["thumbnail_url"].endswith("_thumb.jpg")
    assert client.get(track["thumbnail_url"]).status_code == 200
    assert result["checkpoint"]["sha256"] == active_checkpoint.sha256
    assert "path" not in result["video"] and "path" not in result["checkpoint"], "no server paths leak"
    assert {"decode", "detect", "network", "total", "checkpoint_load"} <= set(result["timings"])
    assert result["people"][0]["thumbnail_url"].endswith("person0.jpg")


def site_page_state(client, analysis_id) -> dict:
    html = client.get(f"/analyses/{analysis_id}/").content.decode()
    return json.loads(re.search(r'<script id="initial-state" type="application/json">(.*?)</script>', html, re.S)[1])


@pytest.mark.django_db(transaction=True)
def test_the_site_describes_an_analysis_exactly_as_the_api_does(active_checkpoint, alice, client, one_face_video):
    """One serializer: the result page's polling answer and initial state are the API's representation."""
    api = token_client(alice)
    created = post_video(api, one_face_video.read_bytes())
    assert created.status_code == 202
    analysis_id = created.json()["id"]
    for expected in ("queued", "done"):
        if expected == "done":
            run_inline(analysis_id)
        polled = client.get(f"/analyses/{analysis_id}/status")
        assert polled.status_code == 200 and polled["Cache-Control"] == "private, no-store"
        from_api = api.get(f"/api/v1/analyses/{analysis_id}/").json()
        assert polled.json() == from_api
        assert site_page_state(client, analysis_id) == from_api
        analysis = Analysis.objects.get(pk=analysis_id)
        relative = AnalysisSerializer(analysis).data  # without a request: the same, with paths for URLs
        assert relative["page_url"] == f"/analyses/{analysis_id}/"
        absolute = json.dumps(relative, cls=DjangoJSONEncoder).replace('"/', '"http://testserver/')
        assert json.loads(absolute) == from_api
        assert from_api["status"] == expected and from_api["stage_label"] == Stage.label_of(from_api["stage"])
    assert from_api["result"]["windows"][0]["tracks"][0]["boxes"], "the whole result, as the API sends it"


def test_the_api_and_the_site_run_the_same_stale_check(active_checkpoint, alice, client, one_face_video, settings):
    from datetime import timedelta

    from django.utils import timezone

    api = token_client(alice)
    stale = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_SECONDS + 5)
    for read in (lambda pk: api.get(f"/api/v1/analyses/{pk}/"), lambda pk: client.get(f"/analyses/{pk}/status")):
        analysis_id = post_video(api, one_face_video.read_bytes()).json()["id"]
        assert jobs.claim(analysis_id, 1)
        Analysis.objects.filter(pk=analysis_id).update(heartbeat_at=stale)
        body = read(analysis_id).json()
        assert body["status"] == "queued" and body["stage"] == Stage.REQUEUED, "requeued before it was described"
        assert "stopped responding" in body["error"]["message"]


def test_callers_see_only_their_own_analyses(active_checkpoint, alice, bob, one_face_video):
    mine = post_video(token_client(alice), one_face_video.read_bytes()).json()
    theirs = token_client(bob)
    assert theirs.get("/api/v1/analyses/").json()["count"] == 0
    assert_error(theirs.get(mine["url"]), 404, "not_found")
    assert_error(theirs.delete(mine["url"]), 404, "not_found")
    assert Analysis.objects.filter(pk=mine["id"]).exists()
    assert token_client(alice).get("/api/v1/analyses/").json()["count"] == 1


def test_list_is_paginated_and_filterable(active_checkpoint, alice, one_face_video, settings):
    client = token_client(alice)
    for _ in range(3):
        post_video(client, one_face_video.read_bytes())
    Analysis.objects.filter(pk=Analysis.objects.order_by("created_at").first().pk).update(status="done", verdict="FAKE")
    page = client.get("/api/v1/analyses/").json()
    assert page["count"] == 3 and len(page["results"]) == 3 and page["next"] is None
    assert client.get("/api/v1/analyses/?status=queued").json()["count"] == 2
    assert client.get("/api/v1/analyses/?verdict=FAKE").json()["count"] == 1
    assert client.get("/api/v1/analyses/?status=done&verdict=REAL").json()["count"] == 0
    assert_error(client.get("/api/v1/analyses/?status=exploded"), 400, "invalid")
    assert_error(client.get("/api/v1/analyses/?page=99"), 404, "not_found")


def test_delete_removes_the_analysis_and_its_media(active_checkpoint, alice, one_face_video):
    client = token_client(alice)
    created = post_video(client, one_face_video.read_bytes()).json()
    folder = Analysis.objects.get(pk=created["id"]).media_dir
    assert folder.is_dir()
    assert client.delete(created["url"]).status_code == 204
    assert not folder.exists() and not Analysis.objects.exists()
    assert_error(client.get(created["url"]), 404, "not_found")


def test_active_checkpoints_with_metrics(active_checkpoint, alice):
    body = token_client(alice).get("/api/v1/checkpoints/").json()
    assert body == [
        {
            "sequence_length": 10,
            "name": "tiny_10_frames",
            "backbone": "mobilenet_v2",
            "image_size": 64,
            "accuracy": None,
            "untrained": True,
            "metrics": {},
            "sha256": active_checkpoint.sha256,
            "created_at": body[0]["created_at"],
        }
    ]


# --- one error format, throttling -----------------------------------------------------------------------------------


def test_errors_share_one_format(active_checkpoint, alice):
    client = token_client(alice)
    assert_error(client.get("/api/v1/nothing-here/"), 404, "not_found")
    assert_error(client.put("/api/v1/analyses/", {}), 405, "method_not_allowed")
    assert_error(client.get("/api/v1/analyses/not-a-uuid/"), 404, "not_found")


def test_unexpected_errors_are_500_in_the_same_format(active_checkpoint, alice, monkeypatch):
    from ml_app.api import views

    def explode():
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "active_checkpoints", explode)
    client = token_client(alice)
    client.raise_request_exception = False
    assert_error(client.get("/api/v1/checkpoints/"), 500, "internal_error")


def test_throttled_callers_get_429(active_checkpoint, alice, bob, monkeypatch):
    monkeypatch.setattr(UserBurstThrottle, "rate", "3/min", raising=False)
    client = token_client(alice)
    for _ in range(3):
        assert client.get("/api/v1/checkpoints/").status_code == 200
    response = client.get("/api/v1/checkpoints/")
    assert_error(response, 429, "throttled", "Try again in")
    assert int(response["Retry-After"]) > 0
    assert token_client(bob).get("/api/v1/checkpoints/").status_code == 200, "rates are per user"


def test_uploads_have_their_own_rate(active_checkpoint, alice, monkeypatch):
    monkeypatch.setattr(UploadThrottle, "rate", "1/hour", raising=False)
    client = token_client(alice)
    assert post_video(client, b"", name="a.mp4").status_code == 400
    assert_error(post_video(client, b"", name="b.mp4"), 429, "throttled")
    assert client.get("/api/v1/analyses/").status_code == 200, "reading is not limited by the upload rate"


def test_a_full_queue_answers_503_with_retry_after(active_checkpoint, alice, one_face_video, settings):
    settings.MAX_QUEUED_ANALYSES = 1
    client = token_client(alice)
    assert post_video(client, one_face_video.read_bytes()).status_code == 202
    response = post_video(client, one_face_video.read_bytes())
    error = assert_error(response, 503, "queue_full", "1 analyses are already waiting for a worker")
    assert error["fields"] == {} and response["Retry-After"] == "60"
    assert Analysis.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_upload_rate_lets_exactly_its_number_through_when_requests_arrive_together(
    active_checkpoint, alice, monkeypatch
):
    """The throttle's history is read, extended and written back under a lock: no two requests take the last place."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    monkeypatch.setattr(UploadThrottle, "rate", "5/hour", raising=False)
    key = Token.objects.get_or_create(user=alice)[0].key

    def send(number):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            return post_video(client, b"", name=f"{number}.mp4").status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(send, range(12)))
    assert statuses == [400] * 5 + [429] * 7


@pytest.mark.django_db(transaction=True)
def test_upload_rates_hold_across_server_processes(active_checkpoint, alice, settings, tmp_path):
    """Two servers as run.sh starts them (two gunicorn processes each) on one database: a rate of 4 lets 4 uploads
    through in all, through the API and through the site's form (the site's used to have no limit at all)."""
    import requests

    from .workers import collect_static, running_server

    env = {
        "STATIC_ROOT": str(collect_static(tmp_path / "static")),
        "MODELS_DIR": str(settings.MODELS_DIR),
        "API_UPLOAD_RATE": "4/hour",
        "SITE_UPLOAD_RATE": "4/hour",
    }
    auth = {"Authorization": f"Token {Token.objects.get_or_create(user=alice)[0].key}"}
    media, queue = settings.MEDIA_ROOT, tmp_path / "queue"
    with (
        running_server(tmp_path / "a.log", media, queue, env) as first,
        running_server(tmp_path / "b.log", media, queue, env) as second,
    ):
        servers = [first, second] * 3
        api = [
            requests.post(f"{s.url}/api/v1/analyses/", headers=auth, files={"video": ("e.mp4", b"")}, timeout=30)
            for s in servers
        ]
        site = []
        for server in servers:
            browser = requests.Session()
            form = browser.get(server.url, timeout=10).text
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
            site.append(
                browser.post(
                    f"{server.url}/analyses/",
                    headers={"Accept": "application/json"},
                    files={"video": ("e.mp4", b"")},
                    data={"csrfmiddlewaretoken": token},
                    timeout=30,
                )
            )
    for answers in (api, site):
        assert sorted(answer.status_code for answer in answers) == [400] * 4 + [429] * 2
        assert all(answer.json()["error"]["code"] == "throttled" for answer in answers if answer.status_code == 429)


# --- the schema -----------------------------------------------------------------------------------------------------


def test_committed_schema_matches_the_code():
    """Regenerate with: python manage.py spectacular --file ml_app/api/openapi.yaml"""
    generated = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout
    assert generated == SCHEMA_FILE.read_text(), "ml_app/api/openapi.yaml is out of date: regenerate it"


def test_schema_and_docs_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/analyses/" in schema.content
    docs = client.get("/api/docs/")
    page = docs.content.decode()
    assert docs.status_code == 200 and "swagger-ui" in page
    assert "cdn" not in page.lower() and "unpkg" not in page and "jsdelivr" not in page
    assert client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


@pytest.mark.django_db
def test_the_api_root_lists_its_entry_points_and_the_site_links_the_docs(client):
    root = client.get("/api/v1/")
    assert root.status_code == 200, "not a 404"
    entries = root.json()
    assert entries["analyses"].endswith("/api/v1/analyses/") and entries["docs"].endswith("/api/docs/")
    assert client.get(entries["checkpoints"].removeprefix("http://testserver")).status_code in (200, 401, 403)
    assert 'href="/api/docs/"' in client.get("/").content.decode(), "the site links the API docs"
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml", "no 404 logged on every page"


@pytest.mark.django_db(transaction=True)
def test_a_real_result_conforms_to_the_schema(active_checkpoint, alice, one_face_video):
    import schemathesis
    import yaml
    from django.core.wsgi import get_wsgi_application
    from werkzeug.test import Client

    schema = schemathesis.openapi.from_dict(yaml.safe_load(SCHEMA_FILE.read_text()))
    wsgi = Client(get_wsgi_application())
    headers = {"Authorization": f"Token {Token.objects.get_or_create(user=alice)[0].key}", "Host": "localhost"}
    created = wsgi.post(
        "/api/v1/analyses/",
        headers=headers,
        data={"video": (one_face_video.open("rb"), "clip.mp4"), "sequence_length": "10"},
    )
    schema["/api/v1/analyses/"]["POST"].validate_response(created)
    analysis_id = created.get_json()["id"]
    run_inline(analysis_id)
    done = wsgi.get(f"/api/v1/analyses/{analysis_id}/", headers=headers)
    assert done.get_json()["status"] == "done"
    schema["/api/v1/analyses/{id}/"]["GET"].validate_response(done)
    schema["/api/v1/analyses/"]["GET"].validate_response(wsgi.get("/api/v1/analyses/", headers=headers))
    schema["/api/v1/checkpoints/"]["GET"].validate_response(wsgi.get("/api/v1/checkpoints/", headers=headers))
