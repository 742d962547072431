"""In a real browser: paste a link on the upload page, watch "Fetching the video", and see the verdict with where
the file came from; a refused link is shown next to the link field. The link is served by a local HTTP server."""

from __future__ import annotations

import shutil
import time

import pytest

from ml_app.models import Analysis

from . import test_browser
from .test_url_analysis import WORKER_ENV
from .web_server import local_server
from .workers import make_broker, running_worker, use_broker

browser_page = test_browser.browser_page  # the same browser and fresh upload rates as tests/test_browser.py
fresh_rates = test_browser.fresh_rates

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]


def test_paste_a_link_and_see_the_verdict(
    live_server,
    active_checkpoint,
    browser_page,
    one_face_video,
    tmp_path,
    settings,
):
    settings.URL_FETCH_ALLOW_PRIVATE = True
    page = browser_page
    broker = make_broker("filesystem", tmp_path)
    with local_server() as server, use_broker(broker), running_worker(broker, tmp_path / "worker.log", WORKER_ENV):
        server.add("interview.mp4", one_face_video, "video/mp4")
        link = server.add(
            "watch.html",
            b"<!DOCTYPE html><html><head><title>The interview</title></head><body>"
            b"<video controls src='interview.mp4'></video></body></html>",
            "text/html",
        )
        page.goto(live_server.url + "/")
        page.fill("#url-input", link)
        page.select_option("#sequence-length", "10")
        page.click("#submit")
        page.wait_for_url("**/analyses/*/", timeout=30_000)
        assert link in page.inner_text("#link-source")

        stages = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not page.is_visible("#result") and not page.is_visible("#failure"):
            if page.is_visible("#progress-section"):
                stages.add(page.inner_text("#job-stage"))
            time.sleep(0.1)
        assert page.is_visible("#result"), f"no verdict after 120 s; stages seen: {stages}"
        analysis = Analysis.objects.get()
        assert page.inner_text("#verdict-label") == analysis.verdict and analysis.verdict in ("REAL", "FAKE")
        page.reload()
        source = page.inner_text("#link-source")
        assert "The interview" in source and server.url("files/interview.mp4") in source


def test_a_refused_link_is_shown_next_to_the_link_field(live_server, active_checkpoint, browser_page, settings):
    settings.URL_FETCH_ALLOW_PRIVATE = False
    page = browser_page
    page.goto(live_server.url + "/")
    page.fill("#url-input", "http://169.254.169.254/latest/meta-data/")
    page.click("#submit")
    page.wait_for_selector("#url-error:not([hidden])", timeout=10_000)
    assert "cloud metadata" in page.inner_text("#url-error")
    assert page.url == live_server.url + "/" and not Analysis.objects.exists()
