"""In a real browser (Playwright driving Debian's Chromium): upload a clip, watch the progress, get the verdict and
the timeline without reloading, and seek the video from the timeline; refusals are shown next to the field they are
about. The site runs on a live server with a real Celery worker process behind it."""

from __future__ import annotations

import shutil
import time

import pytest

from ml_app.models import Analysis

from .workers import make_broker, running_worker, use_broker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (./setup.sh --dev installs it when run as root)",
    ),
]


@pytest.fixture(autouse=True)
def fresh_rates():
    """Upload rates live in the shared cache, which a transactional test does not roll back: each test starts
    with none spent."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def browser_page(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        try:
            yield page
        finally:
            page.screenshot(path=str(tmp_path / "last-page.png"), full_page=True)
            page.goto("about:blank")  # end any video stream before the live server stops
            browser.close()
            from django.db import connections

            connections.close_all()


def test_upload_see_progress_then_verdict_and_timeline(
    live_server, active_checkpoint, browser_page, one_face_video, tmp_path
):
    page = browser_page
    broker = make_broker("filesystem", tmp_path)
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log"):
        page.goto(live_server.url + "/")
        page.set_input_files("#video-input", str(one_face_video))
        assert "one_face.mp4" in page.inner_text("#chosen-file")
        page.select_option("#sequence-length", "10")
        page.click("#submit")
        page.wait_for_url("**/analyses/*/", timeout=30_000)
        address = page.url
        assert "/api/" not in address and page.is_visible("#analysis"), "the result page, not the API's answer"

        stages = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not page.is_visible("#result"):
            if page.is_visible("#progress-section"):
                stages.add(page.inner_text("#job-stage"))
            time.sleep(0.1)
        assert page.is_visible("#result"), f"no verdict after 120 s; stages seen: {stages}"
        assert page.url == address, "the verdict arrived without a reload or another page"
        assert stages, "the progress section was shown while the job ran"

        verdict = page.inner_text("#verdict-label")
        analysis = Analysis.objects.get()
        assert verdict == analysis.verdict and verdict in ("REAL", "FAKE")
        assert "confidence" in page.inner_text("#verdict-detail")
        assert "untrained" in page.inner_text("#warnings")
        windows = page.locator("#timeline svg g.window")
        assert windows.count() == len(analysis.result["windows"]) == 4
        assert page.locator("#people .person img").count() == 1
        assert page.locator("#windows .window-row img").count() == 4
        assert "the network" in page.inner_text("#timings")

        last = analysis.result["windows"][-1]
        windows.nth(3).click()
        page.wait_for_function(
            f"Math.abs(document.getElementById('player').currentTime - {last['start_time']}) < 0.2",
            timeout=30_000,  # seeking in headless Chromium takes seconds on a loaded 2-core machine
        )
        duration = page.evaluate("document.getElementById('player').duration")
        assert duration == pytest.approx(analysis.result["video"]["duration"], abs=0.2), "the video streams and plays"

        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#delete-button")
        page.wait_for_url(live_server.url + "/", timeout=10_000)
        assert "were deleted" in page.inner_text(".messages")
        assert not Analysis.objects.exists()


def test_client_side_checks_stop_a_bad_file_before_upload(live_server, active_checkpoint, browser_page, tmp_path):
    page = browser_page
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    page.goto(live_server.url + "/")
    page.set_input_files("#video-input", str(notes))
    assert "is not a video file we accept" in page.inner_text("#video-error"), "next to the file input"
    assert not page.is_visible("#upload-error")
    page.click("#submit")
    time.sleep(0.5)
    assert page.url == live_server.url + "/" and not Analysis.objects.exists()


def test_server_side_refusal_is_shown_on_the_page(live_server, active_checkpoint, browser_page, tmp_path):
    page = browser_page
    fake = tmp_path / "holiday.mp4"
    fake.write_text("these are not the bytes of a video\n" * 50)
    page.goto(live_server.url + "/")
    page.set_input_files("#video-input", str(fake))
    page.click("#submit")
    page.wait_for_selector("#video-error:not([hidden])", timeout=15_000)
    assert "text file" in page.inner_text("#video-error"), "the server's video error, next to the file input"
    assert not page.is_visible("#upload-error") and not page.is_visible("#sequence-length-error")
    assert not page.is_visible("#upload-progress")


def test_a_sequence_length_refusal_is_shown_next_to_the_select(
    live_server, active_checkpoint, browser_page, one_face_video
):
    page = browser_page
    page.goto(live_server.url + "/")
    page.set_input_files("#video-input", str(one_face_video))
    # A length the page does not offer (as if its checkpoint had been deactivated since the page was loaded).
    page.evaluate("document.getElementById('sequence-length').add(new Option('60 frames', '60', true, true))")
    page.click("#submit")
    page.wait_for_selector("#sequence-length-error:not([hidden])", timeout=15_000)
    assert "no active checkpoint for 60-frame windows" in page.inner_text("#sequence-length-error")
    assert not page.is_visible("#video-error") and not page.is_visible("#upload-error")
    assert page.get_attribute("#sequence-length", "aria-invalid") == "true"
    page.select_option("#sequence-length", "10")
    assert not page.is_visible("#sequence-length-error"), "choosing again clears the error"
    assert not Analysis.objects.exists()


def test_heat_maps_content_credentials_and_the_report_appear_without_a_reload(
    live_server, active_checkpoint, browser_page, one_face_video, tmp_path
):
    """Issue 17's three pieces of evidence on the live page of a signed upload: the heat maps and the file's Content
    Credentials, both drawn by the server, arrive with the verdict without a reload, and the report link gives a
    PDF."""
    from .test_provenance import make_credentials, manifest, sign

    signed = sign(make_credentials(tmp_path / "c2pa"), one_face_video, tmp_path / "signed.mp4", manifest("Browser Cam"))
    page = browser_page
    broker = make_broker("filesystem", tmp_path)
    worker_env = {"DETECTION_HEATMAPS": "all"}
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log", worker_env):
        page.goto(live_server.url + "/")
        page.set_input_files("#video-input", str(signed))
        page.select_option("#sequence-length", "10")
        page.click("#submit")
        page.wait_for_url("**/analyses/*/", timeout=30_000)
        address = page.url
        page.wait_for_selector("#result", state="visible", timeout=120_000)
        page.wait_for_selector("#heatmaps figure.heatmap img", timeout=30_000)
        assert page.url == address, "no reload, no other page"

        analysis = Analysis.objects.get()
        maps = analysis.result["heatmaps"]["maps"]
        assert maps and page.locator("#heatmaps figure.heatmap").count() == len(maps)
        assert "not" in page.inner_text("#heatmaps-explanation")  # what a heat map is not
        credentials = page.inner_text("#content-credentials")
        assert "Browser Cam" in credentials and "Content Credentials" in credentials
        assert analysis.result["provenance"]["state"] == "valid"

        report = page.request.get(live_server.url + page.get_attribute("#report-link", "href"))
        assert report.status == 200 and report.headers["content-type"] == "application/pdf"
        assert report.body().startswith(b"%PDF")
