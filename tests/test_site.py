"""The site through Django's test client: upload validation, analyses, privacy of their URLs, media, delete, retry,
reuse of earlier results, the watchdog, and the promises of the layout (one stage list, jobs sent by name). The
worker itself is exercised in test_worker.py; that the site and the API describe an analysis alike, in test_api.py."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from ml_app import jobs
from ml_app.detection.stages import Stage
from ml_app.models import Analysis, RejectedUpload
from ml_app.uploads import sanitise_filename

from . import media
from .conftest import REPO

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rates():
    """Upload rates live in the shared cache, which a transactional test does not roll back: each test starts
    with none spent."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def upload(client, path_or_bytes, name="clip.mp4", length=10, json_reply=True, **extra):
    content = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    headers = {"HTTP_ACCEPT": "application/json"} if json_reply else {}
    return client.post(
        reverse("ml_app:create"),
        {"video": SimpleUploadedFile(name, content, content_type="video/mp4"), "sequence_length": str(length)},
        **headers,
        **extra,
    )


def field_error(html: str, element_id: str) -> str:
    """The text of a field's error element on a re-rendered form; "" when it is hidden."""
    match = re.search(rf'<p class="field-error" id="{element_id}"[^>]*?(hidden)?>(.*?)</p>', html, re.S)
    assert match, f"no #{element_id} on the page"
    return "" if match.group(1) else match.group(2).strip()


def initial_state(html: str) -> dict:
    match = re.search(r'<script id="initial-state" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no initial state on the page"
    return json.loads(match.group(1))


def incoming_files(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "incoming"
    return list(folder.iterdir()) if folder.exists() else []


# --- the upload page ------------------------------------------------------------------------------------------------


def test_upload_page_offers_only_lengths_with_an_active_checkpoint(client, active_checkpoint):
    page = client.get("/").content.decode()
    assert 'value="10"' in page and "tiny_10_frames" in page and "untrained" in page
    assert 'value="20"' not in page
    choice = page.split('id="sequence-length"')[1].split("</select>")[0]
    assert "Standard · 10 frames per window" in choice, "a plain choice"
    assert "tiny_10_frames" not in choice and "accuracy" not in choice, "technical names one click away"
    assert "<summary>Technical details</summary>" in page
    assert 'name="video"' in page and "drop a video here" in page.lower()


def test_upload_page_without_checkpoints_says_what_to_do(client, site_dirs):
    page = client.get("/").content.decode()
    assert "No checkpoint is active" in page and "sync_checkpoints" in page


# --- validation: each refusal has its own message, is recorded, and leaves no file behind ---------------------------


@pytest.mark.parametrize(
    ("name", "content", "status", "code", "message"),
    [
        ("notes.txt", b"hello", 415, "unsupported_type", "has .txt"),
        ("notes.mp4", b"my meeting notes, definitely not a video\n" * 20, 400, "not_a_video", "text file"),
        ("empty.mp4", b"", 400, "empty_file", "is empty"),
        ("page.mp4", b"<!DOCTYPE html><html>Access denied</html>", 400, "not_a_video", "HTML page"),
    ],
)
def test_bad_uploads_are_refused_with_a_specific_message(
    client, active_checkpoint, settings, name, content, status, code, message
):
    response = upload(client, content, name=name)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"]
    assert error["fields"] == {"video": [error["message"]]}, "a file problem is the video field's error"
    assert RejectedUpload.objects.filter(code=code).count() == 1
    assert Analysis.objects.count() == 0
    assert incoming_files(settings) == []


def test_audio_only_upload(client, active_checkpoint, tmp_path):
    response = upload(client, media.write_audio_only(tmp_path / "talk.mp4"), name="talk.mp4")
    assert response.status_code == 400 and response.json()["error"]["code"] == "no_video_stream"


def test_truncated_upload(client, active_checkpoint, one_face_video):
    response = upload(client, one_face_video.read_bytes()[:30000], name="cut.mp4")
    assert response.status_code == 400 and "truncated" in response.json()["error"]["message"]


def test_over_the_limit_is_stopped_while_streaming(client, active_checkpoint, settings, one_face_video):
    settings.MAX_UPLOAD_BYTES = 10_000
    response = upload(client, one_face_video)  # 78 kB; the test client sends no Content-Length shortcut
    assert response.status_code == 413
    assert "larger than the 0 MB upload limit" in response.json()["error"]["message"]
    assert incoming_files(settings) == [], "the partial file is removed"
    assert RejectedUpload.objects.get().code == "too_large"


def test_announced_oversize_body_is_refused_before_reading(active_checkpoint, settings, rf):
    from ml_app.views import create_analysis

    settings.MAX_UPLOAD_BYTES = 1000
    request = rf.post("/analyses/", data=b"x" * 10, content_type="multipart/form-data; boundary=zz")
    request.META["CONTENT_LENGTH"] = str(5_000_000)
    request.META["HTTP_ACCEPT"] = "application/json"
    request._dont_enforce_csrf_checks = True
    response = create_analysis(request)
    assert response.status_code == 413


def test_too_long_video(client, active_checkpoint, settings, one_face_video):
    settings.MAX_VIDEO_SECONDS = 1  # the video lasts 1.92 s
    response = upload(client, one_face_video)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_long" and "limit is 1 s" in response.json()["error"]["message"]


def test_unknown_sequence_length(client, active_checkpoint, one_face_video):
    response = upload(client, one_face_video, length=60)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, "the API's error shape"
    error = body["error"]
    assert error["code"] == "unknown_sequence_length" and "choose one of: 10" in error["message"]
    assert error["fields"] == {"sequence_length": [error["message"]]}


def test_not_a_number_sequence_length(client, active_checkpoint, one_face_video):
    response = client.post(
        reverse("ml_app:create"),
        {"video": SimpleUploadedFile("a.mp4", one_face_video.read_bytes()), "sequence_length": "twenty"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_sequence_length"
    assert list(response.json()["error"]["fields"]) == ["sequence_length"]


def test_no_active_checkpoint(client, site_dirs, one_face_video):
    response = upload(client, one_face_video)
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_checkpoint"
    assert response.json()["error"]["fields"] == {}, "about the site, not about a field of the form"


def test_video_shorter_than_the_window(client, active_checkpoint, tmp_path):
    response = upload(client, media.face_video(tmp_path / "short.mp4", frames=5))
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_few_frames"


def test_without_javascript_errors_come_back_on_the_form(client, active_checkpoint):
    response = upload(client, b"", name="empty.mp4", json_reply=False)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="upload-form"' in html
    assert "is empty" in field_error(html, "video-error"), "next to the file input"
    assert field_error(html, "sequence-length-error") == ""
    assert re.search(r'id="upload-error"[^>]*hidden', html), "the general box stays hidden"


def test_without_javascript_a_sequence_length_error_is_next_to_the_select(client, active_checkpoint, one_face_video):
    response = upload(client, one_face_video, length=60, json_reply=False)
    assert response.status_code == 400
    html = response.content.decode()
    assert "no active checkpoint for 60-frame windows" in field_error(html, "sequence-length-error")
    assert field_error(html, "video-error") == ""


def test_without_javascript_an_error_about_no_field_is_in_the_general_box(client, site_dirs, one_face_video):
    response = upload(client, one_face_video, json_reply=False)
    assert response.status_code == 503
    html = response.content.decode()
    assert re.search(r'id="upload-error" role="alert" >No checkpoint is active', html)
    assert field_error(html, "video-error") == "" and field_error(html, "sequence-length-error") == ""


def test_missing_csrf_token_is_refused(active_checkpoint, one_face_video, settings, caplog):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = upload(strict, one_face_video)
    assert response.status_code == 403
    strict.cookies["csrftoken"] = "a" * 32  # a cookie but no token in the form: the check reads the whole body
    with caplog.at_level("WARNING", logger="django.security.csrf"):
        response = upload(strict, one_face_video)
    assert response.status_code == 403 and "CSRF token missing" in caplog.text
    assert Analysis.objects.count() == 0
    assert incoming_files(settings) == [], "the body read for the CSRF check left no file behind"


# --- a valid upload -------------------------------------------------------------------------------------------------


def test_valid_upload_is_stored_under_a_random_name_and_queued(
    client, active_checkpoint, settings, one_face_video, isolated_queue, django_capture_on_commit_callbacks
):
    before = set((isolated_queue / "messages").iterdir())
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, one_face_video, name="../../My holiday <clip>.mp4")
    assert response.status_code == 202
    state = response.json()
    analysis = Analysis.objects.get(pk=state["id"])
    assert state["page_url"] == f"http://testserver/analyses/{analysis.pk}/" and state["status"] == "queued"
    assert state["url"] == f"http://testserver/api/v1/analyses/{analysis.pk}/", "url is the API's, as in the API"
    assert state["stage"] == "queued" and state["stage_label"] == Stage.QUEUED.label
    assert analysis.original_name == "My holiday clip.mp4"
    assert analysis.sha256 == hashlib.sha256(one_face_video.read_bytes()).hexdigest()
    assert analysis.checkpoint == active_checkpoint and analysis.sequence_length == 10
    stored = analysis.video_path
    assert stored.is_file() and stored.read_bytes() == one_face_video.read_bytes()
    assert str(analysis.pk) in str(stored) and "holiday" not in str(stored)
    assert Path(settings.MEDIA_ROOT) in stored.parents and "static" not in stored.parts
    assert incoming_files(settings) == []
    messages_after = set((isolated_queue / "messages").iterdir()) - before
    assert len(messages_after) == 1, "one job message is in the queue"
    message = messages_after.pop().read_text()
    assert str(analysis.pk) in message and '"task": "ml_app.analyze_video"' in message, "sent by the task's name"


def test_other_file_fields_are_neither_stored_nor_hashed(client, active_checkpoint, settings, one_face_video):
    extra = SimpleUploadedFile("extra.bin", b"x" * 5000)  # sent before the video: it must not touch its hash
    video = SimpleUploadedFile("clip.mp4", one_face_video.read_bytes(), content_type="video/mp4")
    response = client.post(
        reverse("ml_app:create"),
        {"extra": extra, "video": video, "sequence_length": "10"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 202
    analysis = Analysis.objects.get(pk=response.json()["id"])
    assert analysis.sha256 == hashlib.sha256(one_face_video.read_bytes()).hexdigest()
    assert analysis.size_bytes == one_face_video.stat().st_size
    assert incoming_files(settings) == [], "the extra part left no file behind"


def test_plain_form_post_redirects_to_the_result_page(client, active_checkpoint, one_face_video):
    response = upload(client, one_face_video, json_reply=False)
    analysis = Analysis.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/analyses/{analysis.pk}/"


def test_same_uploads_in_the_same_second_do_not_overwrite_each_other(client, active_checkpoint, one_face_video):
    first = upload(client, one_face_video).json()
    second = upload(client, one_face_video).json()
    a, b = Analysis.objects.get(pk=first["id"]), Analysis.objects.get(pk=second["id"])
    assert a.video_path != b.video_path and a.video_path.is_file() and b.video_path.is_file()


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("C:\\Users\\me\\video.mp4", "video.mp4"),
        ("a\x00b\nc.mp4", "abc.mp4"),
        ("", "video"),
        ("x" * 300 + ".mp4", None),
    ],
)
def test_filenames_are_sanitised(raw, clean):
    result = sanitise_filename(raw)
    if clean is not None:
        assert result == clean
    else:
        assert len(result) <= 120 and result.endswith(".mp4")


# --- the result page and its privacy --------------------------------------------------------------------------------


def finished_analysis(client, one_face_video, site_checkpoint) -> Analysis:
    """An upload analysed here, in the test process, as the worker would (the worker has its own tests)."""
    from ml_app.tasks import analyze_video_task

    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    return analysis


def test_result_page_and_status_json(client, active_checkpoint, one_face_video, site_checkpoint):
    analysis = finished_analysis(client, one_face_video, site_checkpoint)
    page = client.get(f"/analyses/{analysis.pk}/")
    assert page.status_code == 200 and page["Cache-Control"] == "private, no-store"
    assert "noindex" in page["X-Robots-Tag"]
    html = page.content.decode()
    assert 'id="timeline"' in html and 'id="player"' in html
    state = client.get(f"/analyses/{analysis.pk}/status").json()
    assert initial_state(html) == state, "the page starts from what polling answers"
    assert state["status"] == "done" and state["progress"] == 100.0 and state["stage_label"] == "Done"
    result = state["result"]
    assert result["verdict"] in ("REAL", "FAKE") and len(result["windows"]) == 4
    assert state["checkpoint"]["name"] == "tiny_10_frames" and state["checkpoint"]["untrained"]
    assert {"probe", "decode", "detect", "crop", "network", "total", "checkpoint_load"} <= set(result["timings"])
    crop = client.get(result["windows"][0]["tracks"][0]["thumbnail_url"])
    assert crop.status_code == 200 and crop["Content-Type"] == "image/jpeg"
    assert client.get(result["people"][0]["thumbnail_url"]).status_code == 200


def test_the_site_does_not_leak_server_paths(client, active_checkpoint, one_face_video, site_checkpoint, settings):
    analysis = finished_analysis(client, one_face_video, site_checkpoint)
    sent = client.get(f"/analyses/{analysis.pk}/status").content.decode()
    sent += client.get(f"/analyses/{analysis.pk}/").content.decode()
    for secret in (str(settings.MEDIA_ROOT), str(site_checkpoint.parent), analysis.video, "crop_files"):
        assert secret not in sent


def test_unknown_or_malformed_analysis_ids_are_not_found(client, active_checkpoint):
    assert client.get(f"/analyses/{uuid.uuid4()}/").status_code == 404
    assert client.get(f"/analyses/{uuid.uuid4()}/status").status_code == 404
    assert client.get("/analyses/1/").status_code == 404
    assert client.get("/analyses/").status_code == 405, "there is no list of analyses"


def test_another_visitor_cannot_reach_an_analysis_without_its_url(client, active_checkpoint, one_face_video):
    from django.test import Client

    mine = upload(client, one_face_video).json()
    stranger = Client()
    assert mine["id"] not in stranger.get("/").content.decode()
    assert stranger.get(f"/analyses/{uuid.uuid4()}/video").status_code == 404
    assert stranger.get("/admin/ml_app/analysis/").status_code == 302, "the analyses list needs an admin login"
    assert len(mine["id"]) == 36 and uuid.UUID(mine["id"]).version == 4, "addresses are random UUIDs"


def test_crop_names_cannot_escape_the_analysis_folder(client, active_checkpoint, one_face_video, site_checkpoint):
    analysis = finished_analysis(client, one_face_video, site_checkpoint)
    for name in ("..%2F..%2Fvideo.mp4", "../video.mp4", "person0.png", "x.jpg"):
        assert client.get(f"/analyses/{analysis.pk}/crops/{name}").status_code == 404


def test_video_is_served_with_byte_ranges_for_seeking(client, active_checkpoint, one_face_video):
    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    data = one_face_video.read_bytes()
    whole = client.get(f"/analyses/{analysis.pk}/video")
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == data
    assert whole["Accept-Ranges"] == "bytes"
    part = client.get(f"/analyses/{analysis.pk}/video", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert b"".join(part.streaming_content) == data[100:200]
    tail = client.get(f"/analyses/{analysis.pk}/video", HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == data[-10:]
    assert client.get(f"/analyses/{analysis.pk}/video", HTTP_RANGE=f"bytes={len(data) + 5}-").status_code == 416


def test_delete_removes_record_and_media(client, active_checkpoint, one_face_video, site_checkpoint):
    analysis = finished_analysis(client, one_face_video, site_checkpoint)
    folder = analysis.media_dir
    assert (folder / "crops").is_dir()
    assert client.get(f"/analyses/{analysis.pk}/delete").status_code == 405
    response = client.post(f"/analyses/{analysis.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Analysis.objects.filter(pk=analysis.pk).exists()
    assert not folder.exists()
    assert client.get(f"/analyses/{analysis.pk}/").status_code == 404


def test_same_file_and_checkpoint_reuse_the_earlier_result(client, active_checkpoint, one_face_video, site_checkpoint):
    first = finished_analysis(client, one_face_video, site_checkpoint)
    response = upload(client, one_face_video, name="again.mp4")
    assert response.status_code == 202
    second = Analysis.objects.get(pk=response.json()["id"])
    assert second.pk != first.pk and second.status == Analysis.Status.DONE
    assert second.reused_from == first and second.result == first.result
    assert second.video_path.is_file() and (second.crops_dir / "person0.jpg").is_file()
    assert response.json()["reused"] is True
    first_folder = first.media_dir
    client.post(f"/analyses/{first.pk}/delete")
    assert not first_folder.exists() and (second.crops_dir / "person0.jpg").is_file(), "each keeps its own copy"


# --- failures, retry and the watchdog -------------------------------------------------------------------------------


def test_a_failure_is_recorded_and_can_be_retried(
    client, active_checkpoint, one_face_video, site_checkpoint, django_capture_on_commit_callbacks
):
    from ml_app.tasks import analyze_video_task

    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    analysis.video_path.write_bytes(b"")  # the stored file got damaged
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED and analysis.error_code == "empty_file"
    state = client.get(f"/analyses/{analysis.pk}/status").json()
    assert state["error"]["message"].startswith("'video.mp4' is empty")
    stored = analysis.video_path.rename(analysis.video_path.with_suffix(".gone"))
    assert not jobs.retry(analysis), "a failed analysis whose video is gone is not queued again (admin action too)"
    stored.rename(analysis.video_path)
    analysis.video_path.write_bytes(one_face_video.read_bytes())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        client.post(f"/analyses/{analysis.pk}/retry")
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.QUEUED and analysis.attempts == 0 and len(callbacks) == 1
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE


def test_a_delivery_for_an_attempt_already_taken_does_nothing(client, active_checkpoint, one_face_video):
    from ml_app.tasks import analyze_video_task

    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    assert jobs.claim(str(analysis.pk), 1)
    analyze_video_task.run(str(analysis.pk), 1)  # a second delivery of the same message
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.RUNNING and analysis.result is None


def test_watchdog_requeues_then_fails_a_job_whose_worker_stopped(
    client, active_checkpoint, one_face_video, settings, django_capture_on_commit_callbacks
):
    settings.ANALYSIS_MAX_ATTEMPTS = 2
    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    assert jobs.claim(str(analysis.pk), 1)
    stale = timezone.now() - timedelta(seconds=settings.ANALYSIS_STALE_SECONDS + 5)
    Analysis.objects.filter(pk=analysis.pk).update(heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        state = client.get(f"/analyses/{analysis.pk}/status").json()  # a page polling triggers the watchdog
    assert state["status"] == "queued" and state["stage"] == "requeued" and len(callbacks) == 1
    assert jobs.claim(str(analysis.pk), 2)
    Analysis.objects.filter(pk=analysis.pk).update(heartbeat_at=stale)
    assert jobs.recover_stale() == {"requeued": 0, "failed": 1}
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED and analysis.error_code == "worker_lost"
    assert "stopped responding 2 times" in analysis.error_message


def test_a_live_job_is_left_alone(client, active_checkpoint, one_face_video):
    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    assert jobs.claim(str(analysis.pk), 1)
    assert jobs.recover_stale() == {"requeued": 0, "failed": 0}


# --- request-level refusals: one error shape, the right status (issue 12) -------------------------------------------


def csrf_client():
    """A browser: CSRF checks enforced, the cookie and the form's token from the upload page."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/").content.decode()
    return browser, re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]


def test_over_the_limit_with_a_valid_csrf_token_is_413_not_a_csrf_failure(active_checkpoint, settings, one_face_video):
    settings.MAX_UPLOAD_BYTES = 10_000  # the 78 kB video is over it, envelope included
    browser, token = csrf_client()
    data = {"video": SimpleUploadedFile("a.mp4", one_face_video.read_bytes()), "sequence_length": "10"}
    response = browser.post("/analyses/", {**data, "csrfmiddlewaretoken": token}, HTTP_ACCEPT="application/json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert response["Connection"] == "close", "the rest of the body is not read"
    assert incoming_files(settings) == []


@pytest.mark.parametrize("length", ["²", "9" * 5000, "٣"])
def test_an_odd_sequence_length_on_the_form_without_javascript_is_400_not_500(client, active_checkpoint, length):
    response = client.post(
        reverse("ml_app:create"), {"video": SimpleUploadedFile("a.mp4", b"x"), "sequence_length": length}
    )
    assert response.status_code == 400
    assert "is not a number of frames per window" in field_error(response.content.decode(), "sequence-length-error")


def test_a_range_header_with_a_huge_number_is_416(client, active_checkpoint, one_face_video):
    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    size = one_face_video.stat().st_size
    response = client.get(f"/analyses/{analysis.pk}/video", HTTP_RANGE="bytes=" + "9" * 5000 + "-")
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{size}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"
    whole = client.get(f"/analyses/{analysis.pk}/video", HTTP_RANGE="bytes=-" + "9" * 5000)
    assert whole.status_code == 206 and whole["Content-Range"] == f"bytes 0-{size - 1}/{size}"


def test_a_body_without_content_length_is_411(active_checkpoint, rf, settings):
    from ml_app.views import create_analysis

    request = rf.post("/analyses/", data=b"x", content_type="multipart/form-data; boundary=zz")
    request.META.pop("CONTENT_LENGTH")
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    request.META["HTTP_ACCEPT"] = "application/json"
    request._dont_enforce_csrf_checks = True
    response = create_analysis(request)
    assert response.status_code == 411 and json.loads(response.content)["error"]["code"] == "length_required"
    assert json.loads(response.content)["error"]["message"].startswith("Content-Length required")


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({f"f{n}": "x" for n in range(1500)}, 400, "too_many_fields"),
        ({"video": "x" * 3_000_000}, 413, "fields_too_large"),
    ],
)
def test_what_django_refuses_to_read_gets_the_error_shape(client, active_checkpoint, settings, data, status, code):
    for reply in ("json", "page"):
        headers = {"HTTP_ACCEPT": "application/json"} if reply == "json" else {}
        response = client.post(reverse("ml_app:create"), {"other": SimpleUploadedFile("x", b"x"), **data}, **headers)
        assert response.status_code == status
        if reply == "json":
            assert response.json()["error"]["code"] == code
        else:
            assert 'id="upload-form"' in response.content.decode()
    assert RejectedUpload.objects.filter(code=code).count() == 2
    assert incoming_files(settings) == []


def test_too_many_fields_on_other_site_forms_get_the_error_shape(client, active_checkpoint, one_face_video):
    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    response = client.post(
        f"/analyses/{analysis.pk}/delete", {f"f{n}": "x" for n in range(1500)}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_fields"
    assert Analysis.objects.filter(pk=analysis.pk).exists()


def test_a_second_video_part_is_refused_and_neither_is_kept(client, active_checkpoint, settings, one_face_video):
    response = client.post(
        reverse("ml_app:create"),
        {
            "video": [
                SimpleUploadedFile("a.mp4", one_face_video.read_bytes()),
                SimpleUploadedFile("b.mp4", one_face_video.read_bytes()),
            ],
            "sequence_length": "10",
        },
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "several_files"
    assert Analysis.objects.count() == 0 and incoming_files(settings) == []


def test_an_upload_part_is_removed_even_when_reading_breaks_midway(active_checkpoint, settings, monkeypatch, rf):
    """The part being written when the body breaks off (a client that resets the connection) goes too."""
    from ml_app import middleware

    body = b'--zz\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n\r\n' + b"x" * 300_000 + b"\r\n"

    class Breaking:
        def __init__(self):
            self.sent = 0

        def read(self, size=-1):
            if self.sent > 200_000:
                self.parts = incoming_files(settings)
                raise ConnectionResetError("reset by peer")
            self.sent += 65536
            return body[self.sent - 65536 : self.sent]

    request = rf.post("/analyses/", data=b"x", content_type="multipart/form-data; boundary=zz")
    request.META["CONTENT_LENGTH"] = str(len(body) + 10)
    request.META["HTTP_ACCEPT"] = "application/json"
    request._stream = stream = Breaking()
    request._dont_enforce_csrf_checks = True

    from ml_app.views import create_analysis

    response = middleware.RequestFailureMiddleware(create_analysis)(request)
    assert response.status_code == 400 and json.loads(response.content)["error"]["code"] == "incomplete_body"
    assert len(stream.parts) == 1, "the video part was being written when the body broke off"
    assert incoming_files(settings) == []


def test_a_browser_recording_without_a_duration_is_analysed(client, active_checkpoint, tmp_path, site_checkpoint):
    """MediaRecorder's WebM has no duration, frame count or rate in its header: measured, then analysed."""
    from ml_app.tasks import analyze_video_task

    from .recordings import jittered_times, recorded_video

    recording = recorded_video(tmp_path / "webcam.webm", jittered_times(30))
    response = upload(client, recording, name="webcam.webm")
    assert response.status_code == 202, response.json()
    analysis = Analysis.objects.get(pk=response.json()["id"])
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    video = analysis.result["video"]
    assert video["frame_count"] == 30 and video["frame_count_exact"] and 20 < video["fps"] < 35
    assert analysis.result["windows_scored"] >= 1


def test_a_long_browser_recording_gets_the_length_message(client, active_checkpoint, settings, tmp_path):
    from .recordings import recorded_video

    settings.MAX_VIDEO_SECONDS = 600
    two_hours = [round(n * 7_200_000 / 59) for n in range(60)]
    recording = recorded_video(tmp_path / "meeting.webm", two_hours, 64, 48, ((4, 4, 40),))
    response = upload(client, recording, name="meeting.webm")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_long" and error["message"].startswith("The video lasts more than 600 s")


# --- rates and the queue bound --------------------------------------------------------------------------------------


def test_anonymous_uploads_on_the_site_have_a_per_address_limit(client, active_checkpoint, monkeypatch):
    from ml_app.api.throttling import AnonymousUploadThrottle

    monkeypatch.setattr(AnonymousUploadThrottle, "rate", "2/hour", raising=False)
    for name in ("a.mp4", "b.mp4"):
        assert upload(client, b"", name=name).status_code == 400, "refused, but counted"
    response = upload(client, b"", name="c.mp4", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert response.status_code == 429, "a forged X-Forwarded-For is not a new address"
    error = response.json()["error"]
    assert error["code"] == "throttled" and "try again in" in error["message"] and int(response["Retry-After"]) > 0
    page = upload(client, b"", name="d.mp4", json_reply=False)
    assert page.status_code == 429 and "Too many uploads" in page.content.decode()
    from django.test import Client

    other = Client(REMOTE_ADDR="198.51.100.7")
    assert upload(other, b"", name="e.mp4").status_code == 400, "another address has its own budget"
    assert not RejectedUpload.objects.filter(code="throttled").exists(), "a flood does not fill the records"


def test_a_signed_in_visitor_spends_the_api_upload_budget(client, active_checkpoint, monkeypatch, django_user_model):
    from ml_app.api.throttling import UploadThrottle

    monkeypatch.setattr(UploadThrottle, "rate", "1/hour", raising=False)
    client.force_login(django_user_model.objects.create_user("carol"))
    assert upload(client, b"", name="a.mp4").status_code == 400
    assert upload(client, b"", name="b.mp4").status_code == 429


def test_a_full_queue_answers_503_with_retry_after(client, active_checkpoint, settings, one_face_video, tmp_path):
    settings.MAX_QUEUED_ANALYSES = 2
    for _ in range(2):
        assert upload(client, one_face_video).status_code == 202
    response = upload(client, media.face_video(tmp_path / "other.mp4", frames=12))
    assert response.status_code == 503 and response["Retry-After"] == "60"
    error = response.json()["error"]
    assert error["code"] == "queue_full" and "2 analyses are already waiting" in error["message"]
    assert Analysis.objects.count() == 2 and incoming_files(settings) == []
    assert {path.name for path in analyses_dirs(settings)} == {
        str(pk) for pk in Analysis.objects.values_list("pk", flat=True)
    }
    assert RejectedUpload.objects.filter(code="queue_full").count() == 1


def analyses_dirs(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "analyses"
    return list(folder.iterdir()) if folder.exists() else []


@pytest.mark.django_db(transaction=True)
def test_the_queue_bound_holds_for_uploads_arriving_together(active_checkpoint, settings, tmp_path):
    """Eight uploads at once with room for three: exactly three are queued (the check and the insert are one step)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections
    from django.test import Client

    settings.MAX_QUEUED_ANALYSES = 3
    videos = [media.faceless_video(tmp_path / f"{n}.mp4", frames=12, width=96 + 8 * n, height=64) for n in range(8)]

    def send(path):
        try:
            return upload(Client(REMOTE_ADDR=f"10.0.0.{path.stem}"), path).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(send, videos))
    assert statuses == [202] * 3 + [503] * 5
    assert Analysis.objects.filter(status=Analysis.Status.QUEUED).count() == 3


# --- what the media folder keeps: ml_app.retention, manage.py purge_media -------------------------------------------


def age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_purge_removes_stale_upload_parts_and_media_folders_without_an_analysis(
    client, active_checkpoint, settings, one_face_video
):
    from ml_app.retention import INCOMING_MAX_AGE, purge

    kept = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    media_root = Path(settings.MEDIA_ROOT)
    (media_root / "incoming").mkdir(exist_ok=True)
    stale, fresh = media_root / "incoming" / "upload-a.part", media_root / "incoming" / "upload-b.part"
    for part in (stale, fresh):
        part.write_bytes(b"x")
    age(stale, INCOMING_MAX_AGE + 10)
    orphan = media_root / "analyses" / str(uuid.uuid4())
    (orphan / "crops").mkdir(parents=True)
    age(orphan, INCOMING_MAX_AGE + 10)
    stray = media_root / "analyses" / "not-an-analysis"
    stray.mkdir()
    age(stray, INCOMING_MAX_AGE + 10)
    age(kept.media_dir, INCOMING_MAX_AGE + 10)
    purged = purge()
    assert (purged.incoming, purged.orphans, purged.analyses) == (1, 2, 0), "retention is off by default"
    assert not stale.exists() and fresh.exists() and not orphan.exists() and not stray.exists()
    assert kept.video_path.is_file(), "an analysis' own folder stays, however old"


def test_retention_deletes_old_analyses_with_their_media_and_old_refusal_records(
    client, active_checkpoint, settings, one_face_video, tmp_path
):
    from io import StringIO

    from django.core.management import call_command

    old = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    running = Analysis.objects.get(pk=upload(client, media.face_video(tmp_path / "b.mp4", frames=12)).json()["id"])
    recent = Analysis.objects.get(pk=upload(client, media.face_video(tmp_path / "c.mp4", frames=13)).json()["id"])
    upload(client, b"", name="empty.mp4")
    long_ago = timezone.now() - timedelta(days=40)
    Analysis.objects.filter(pk__in=[old.pk, running.pk]).update(created_at=long_ago)
    Analysis.objects.filter(pk=running.pk).update(status=Analysis.Status.RUNNING)
    RejectedUpload.objects.update(created_at=long_ago)
    out = StringIO()
    call_command("purge_media", "--retention-days", "30", "--dry-run", stdout=out)
    assert "Would remove" in out.getvalue() and "1 analysis(es) and 1 refused-upload record(s)" in out.getvalue()
    assert Analysis.objects.count() == 3, "a dry run removes nothing"
    settings.MEDIA_RETENTION_DAYS = 30
    call_command("purge_media", stdout=StringIO())
    assert set(Analysis.objects.values_list("pk", flat=True)) == {running.pk, recent.pk}, "a running one finishes"
    assert not old.media_dir.exists() and recent.video_path.is_file()
    assert not RejectedUpload.objects.exists()


# --- serving --------------------------------------------------------------------------------------------------------


def test_production_checklist_passes_check_deploy(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
        "DJANGO_ALLOWED_HOSTS": "detector.example.org",
        "DJANGO_HTTPS": "true",
        "STATE_DIR": str(tmp_path),
    }
    env.pop("DJANGO_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_static_files_are_served_by_whitenoise(client):
    assert client.get("/static/css/site.css").status_code == 200


def test_production_static_files_are_fingerprinted_and_served(tmp_path):
    """What run.sh and a deployment do: collectstatic, then whitenoise serves the hashed, compressed files."""
    env = {**os.environ, "STATIC_ROOT": str(tmp_path / "static"), "STATE_DIR": str(tmp_path)}
    env.pop("DJANGO_DEBUG", None)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=REPO, env=env, check=True, capture_output=True
    )
    code = (
        "import django; django.setup();"
        "from django.templatetags.static import static; from django.test import Client;"
        "url = static('js/result.js'); response = Client(HTTP_HOST='localhost').get(url);"
        "print(url, response.status_code, response.headers.get('Cache-Control'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "project_settings.settings"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    url, status, cache = out[0], out[1], " ".join(out[2:])
    assert url.startswith("/static/js/result.") and url != "/static/js/result.js", "the name carries a content hash"
    assert status == "200" and "max-age" in cache


def test_errors_are_pages_not_tracebacks(client, site_dirs):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Not found" in response.content.decode()


def test_status_json_is_valid_for_queued_jobs(client, active_checkpoint, one_face_video):
    state = upload(client, one_face_video).json()
    polled = client.get(state["page_url"] + "status").json()
    assert polled["status"] == "queued" and polled["result"] is None
    assert polled == state, "the upload's answer and the polling answer are one description"


# --- one home for each decision -------------------------------------------------------------------------------------


def imported_modules(module: str) -> set[str]:
    """Every module a module of ours imports, function-level imports included, relative names made absolute; for
    ``from package import name`` both ``package`` and ``package.name``."""
    path = REPO.joinpath(*module.split(".")).with_suffix(".py")
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            found |= {source} | {f"{source}.{alias.name}" for alias in node.names}
    return found


def test_jobs_does_not_import_the_task_module():
    """jobs sends the task by name; importing tasks there would hide an import cycle (tasks imports jobs)."""
    assert "ml_app.tasks" not in imported_modules("ml_app.jobs")
    assert "ml_app.jobs" in imported_modules("ml_app.tasks"), "the helper resolves relative imports"
    code = (
        "import sys, django; django.setup(); import ml_app.jobs;"
        "print('ml_app.tasks' in sys.modules, 'ml_app.views' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project_settings.settings"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_the_site_and_the_api_share_one_submission_service():
    api, site = imported_modules("ml_app.api.views"), imported_modules("ml_app.views")
    assert "ml_app.views" not in api, "the API does not borrow from the site's views"
    assert "ml_app.submissions" in api and "ml_app.submissions" in site
    assert "ml_app.api.serializers.describe" in site, "the site describes analyses with the API's serializer"


def test_the_stage_field_offers_exactly_the_stage_enumeration():
    field = Analysis._meta.get_field("stage")
    assert field.choices == [(stage.value, stage.label) for stage in Stage]
    assert field.default == Stage.QUEUED
    assert Analysis().get_stage_display() == Stage.QUEUED.label


def test_the_stage_choices_are_migrated():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "ml_app", "--check", "--dry-run", stdout=out)  # exits 1 if a migration is missing
    assert "No changes detected" in out.getvalue()


def test_progress_reports_store_stages_and_the_shared_percentages(client, active_checkpoint, one_face_video):
    from ml_app.detection.stages import progress_percent

    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    assert jobs.claim(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.stage == Stage.LOADING
    report = jobs.ProgressReporter(str(analysis.pk), 1)
    for stage, fraction, stored in [
        (Stage.PROBE, 0.0, Stage.PROBE),
        ("windows", 0.5, Stage.WINDOWS),  # a plain string from the core works as well
        (Stage.NETWORK, 0.95, Stage.NETWORK),
        (Stage.DONE, 1.0, Stage.SAVING),  # the job still saves the evidence
    ]:
        report(stage, fraction, force=True)
        analysis.refresh_from_db()
        assert (analysis.stage, analysis.progress) == (stored, progress_percent(Stage(stage), fraction))
        state = client.get(f"/analyses/{analysis.pk}/status").json()
        assert state["stage"] == stored and state["stage_label"] == Stage(stored).label
