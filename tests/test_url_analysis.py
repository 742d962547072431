"""Analysing a link, end to end: the site's form and API take a URL, a real worker fetches it from a local HTTP server
(this machine has no internet) and analyses it like an upload; every failure is specific and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ml_app.models import Analysis, RejectedUpload

from . import media
from .web_server import local_server
from .workers import make_broker, running_worker, use_broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_ENV = {
    "URL_FETCH_ALLOW_PRIVATE": "true",
    "URL_FETCH_TIMEOUT": "8",
    "URL_PAGE_EXTRACTORS": "generic,html5",  # the generic extractor and <video> tags: no 1,800 imports per test
    "MAX_UPLOAD_MB": "2",
}


@pytest.fixture(autouse=True)
def fresh_rates():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def submit(client, data: dict) -> tuple[int, dict]:
    response = client.post(reverse("ml_app:create"), data, HTTP_ACCEPT="application/json")
    return response.status_code, response.json()


def submit_link(client, url: str, **fields) -> Analysis:
    status, body = submit(client, {"url": url, "sequence_length": "10", **fields})
    assert status == 202, body
    assert body["source"]["url"] == url and body["status"] == "queued" and body["video_url"]
    return Analysis.objects.get(pk=body["id"])


def finished(analysis: Analysis, worker, timeout: float = 120) -> Analysis:
    def check():
        analysis.refresh_from_db()
        return analysis.is_finished

    wait_for(check, timeout, what=f"analysis {analysis.pk} to finish")
    assert analysis.error_code != "internal_error", worker.log()[-3000:]
    return analysis


def incoming(settings) -> list[str]:
    folder = Path(settings.MEDIA_ROOT) / "incoming"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_links_are_fetched_by_the_worker_and_analysed_like_uploads(
    client, active_frame_checkpoint, one_face_video, tmp_path, settings
):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    photo = media.photo(tmp_path / "face.jpg")
    broker = make_broker("filesystem", tmp_path)
    with local_server() as server, use_broker(broker), running_worker(broker, tmp_path / "w.log", WORKER_ENV) as w:
        mp4 = server.add("clip.mp4", one_face_video, "video/mp4")
        jpeg = server.add("face.jpg", photo, "image/jpeg")
        server.add("clip2.mp4", one_face_video, "video/mp4")
        page = server.add(
            "watch.html",
            b"<!DOCTYPE html><html><head><title>Press conference</title></head><body>"
            b"<video controls><source src='clip2.mp4' type='video/mp4'></video></body></html>",
            "text/html",
        )
        direct = finished(submit_link(client, server.url(f"redirect?to={mp4}")), w)
        assert direct.status == Analysis.Status.DONE, (direct.error_message, w.log()[-3000:])
        assert direct.verdict in ("REAL", "FAKE", "INCONCLUSIVE") and direct.media == "video"
        assert direct.final_url == mp4 and direct.fetched_at is not None and direct.original_name == "clip.mp4"
        assert direct.video_path.read_bytes() == one_face_video.read_bytes()
        assert direct.size_bytes == one_face_video.stat().st_size == direct.fetched_bytes

        still = finished(submit_link(client, jpeg), w)
        assert still.status == Analysis.Status.DONE, still.error_message
        assert still.media == "image" and still.checkpoint == active_frame_checkpoint

        found = finished(submit_link(client, page), w)
        assert found.status == Analysis.Status.DONE, found.error_message
        assert found.source_title.startswith("Press conference") and found.final_url == server.url("files/clip2.mp4")
        assert found.reused_from == direct, "the same file and checkpoint: the earlier result is reused"

        state = client.get(reverse("ml_app:analysis-status", args=[found.pk])).json()
        assert state["source"]["title"].startswith("Press conference") and state["source"]["final_url"].endswith(
            "clip2.mp4"
        )
        page_html = client.get(reverse("ml_app:analysis", args=[found.pk])).content.decode()
        assert page in page_html and "Press conference" in page_html
        assert incoming(settings) == []


def test_links_that_cannot_be_analysed_fail_with_their_reason(client, active_checkpoint, tmp_path, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    broker = make_broker("filesystem", tmp_path)
    with local_server() as server, use_broker(broker), running_worker(broker, tmp_path / "w.log", WORKER_ENV) as w:
        cases = {
            server.url("status/404"): ("not_found", "nothing at this link"),
            server.add("data.json", b'{"a": 1}', "application/json"): ("not_media", "application/json"),
            server.add("words.html", b"<html><body><p>No video here.</p></body></html>", "text/html"): (
                "no_video_found",
                "No video was found on this page",
            ),
            server.url("endless"): ("too_large", "larger than the limit of 2 MB"),
            server.url("trickle?every=0.05"): ("timeout", "longer than the limit of 8 seconds"),
            server.add("fake.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 3000, "video/mp4"): ("not_a_video", ""),
        }
        analyses = {url: submit_link(client, url) for url in cases}
        for url, (code, words) in cases.items():
            analysis = finished(analyses[url], w)
            assert (analysis.status, analysis.error_code) == ("failed", code), (url, analysis.error_message)
            assert words in analysis.error_message
            described = client.get(reverse("ml_app:analysis-status", args=[analysis.pk])).json()
            assert described["error"] == {"code": code, "message": analysis.error_message}
        assert incoming(settings) == []
        assert not any(a.media_dir.exists() for a in analyses.values())


def test_a_link_to_a_private_address_is_refused_at_once_naming_the_reason(client, active_checkpoint, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = False
    with local_server() as server:
        url = server.url("files/clip.mp4")
        status, body = submit(client, {"url": url})
        assert status == 400 and body["error"]["code"] == "address_refused"
        assert "loopback" in body["error"]["message"] and body["error"]["fields"] == {"url": [body["error"]["message"]]}
        form = client.post(reverse("ml_app:create"), {"url": "http://10.0.0.1/clip.mp4"})
        assert form.status_code == 400 and "private network address" in form.content.decode()
        assert server.requests == [], "nothing was fetched"
    assert list(RejectedUpload.objects.values_list("code", flat=True)) == ["address_refused", "address_refused"]
    assert Analysis.objects.count() == 0


def test_a_file_and_a_link_together_or_links_switched_off_are_refused(client, active_checkpoint, settings, tmp_path):
    status, body = submit(client, {"url": "https://example.com/a.mp4", "video": SimpleUploadedFile("a.mp4", b"x")})
    assert status == 400 and body["error"]["code"] == "file_and_url"
    status, body = submit(client, {"url": "ftp://example.com/a.mp4"})
    assert status == 400 and body["error"]["code"] == "invalid_url" and "http" in body["error"]["message"]
    settings.URL_ANALYSIS = False
    status, body = submit(client, {"url": "https://example.com/a.mp4"})
    assert status == 400 and body["error"]["code"] == "url_disabled"
    assert Analysis.objects.count() == 0
