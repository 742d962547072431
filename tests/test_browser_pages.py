"""Issue 30 in a real browser (Playwright driving Debian's Chromium) at a desktop width (1366 px) and a phone's
(390 px): the upload page, a running analysis, a finished video result, a photo result and an error page. On each:
no horizontal scroll (the document is as wide as the viewport), no serious or critical axe-core violation, and on a
result the plain-words summary and one numbering of people in the reason, the cards, the windows and the heat maps.
Screenshots of every state at both widths are written to the test's folder (and to $SCREENSHOTS_DIR if set)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ml_app.models import Analysis

from . import media, test_browser

browser_page = test_browser.browser_page  # the fixtures of the browser tests: Chromium, and fresh upload rates
fresh_rates = test_browser.fresh_rates

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]

WIDTHS = {"desktop": 1366, "phone": 390}
SERIOUS = {"serious", "critical"}


def _analysed(client, path: Path, name: str, **fields) -> Analysis:
    """An analysis made through the site and run in this process (the worker's task, without a worker)."""
    from django.core.cache import cache

    from ml_app.tasks import analyze_video_task

    cache.clear()  # upload rates
    client.post("/analyses/", {"video": SimpleUploadedFile(name, path.read_bytes()), **fields})
    analysis = Analysis.objects.order_by("-created_at").first()
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    return analysis


def check_page(page, name: str, folder: Path) -> None:
    """At both widths: no horizontal scroll, no serious axe-core violation; a screenshot of each."""
    from axe_playwright_python.sync_playwright import Axe

    shots = [folder] + ([Path(os.environ["SCREENSHOTS_DIR"])] if os.environ.get("SCREENSHOTS_DIR") else [])
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll == width, f"{name} at {width} px is {scroll} px wide: it scrolls sideways"
        for where in shots:
            where.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(where / f"{name}-{label}.png"), full_page=True)
        results = Axe().run(page)
        bad = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
        assert not bad, f"{name} at {width} px: " + "; ".join(
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}" for v in bad
        )


def test_the_upload_and_error_pages_fit_a_phone_and_pass_axe(live_server, active_checkpoint, browser_page, tmp_path):
    page = browser_page
    page.goto(live_server.url + "/")
    assert "Quick" in page.inner_text("#sequence-length") or "Standard" in page.inner_text("#sequence-length")
    check_page(page, "upload", tmp_path / "screenshots")
    page.goto(live_server.url + "/analyses/00000000-0000-0000-0000-000000000000/")
    check_page(page, "error", tmp_path / "screenshots")


def test_a_running_analysis_fits_a_phone_and_passes_axe(
    live_server, client, active_checkpoint, browser_page, two_face_video, tmp_path
):
    page = browser_page
    client.post(
        "/analyses/",
        {"video": SimpleUploadedFile("queued.mp4", two_face_video.read_bytes()), "sequence_length": "10"},
    )
    queued = Analysis.objects.get()  # no worker runs: it stays queued
    page.goto(f"{live_server.url}/analyses/{queued.pk}/")
    assert page.is_visible("#progress-section") and not page.is_visible("#result")
    check_page(page, "running", tmp_path / "screenshots")


def test_a_video_result_names_people_alike_everywhere_fits_a_phone_and_passes_axe(
    live_server, client, active_checkpoint, browser_page, two_face_video, tmp_path, settings
):
    page = browser_page
    settings.DETECTION_HEATMAPS = "all"
    video = _analysed(client, two_face_video, "two_faces.mp4", sequence_length="10")
    page.goto(f"{live_server.url}/analyses/{video.pk}/")
    page.wait_for_selector("#result", state="visible")
    summary = page.inner_text("#summary")
    assert "Looked at" in summary and "of the" in summary and "video" in summary
    assert page.inner_text("#summary-headline").startswith(("This video", "The model"))
    _same_people(page, video.result)
    last = video.result["windows"][-1]
    page.focus(f'#windows .window-row[data-window="{last["index"]}"]')
    page.keyboard.press("Enter")  # a window is chosen with the keyboard as with the mouse
    page.wait_for_function(
        f"Math.abs(document.getElementById('player').currentTime - {last['start_time']}) < 0.2", timeout=30_000
    )
    check_page(page, "video-result", tmp_path / "screenshots")


def test_a_photo_result_speaks_of_photos_fits_a_phone_and_passes_axe(
    live_server, client, active_frame_checkpoint, browser_page, tmp_path
):
    page = browser_page
    photo = _analysed(client, media.photo(tmp_path / "face.jpg"), "face.jpg")
    page.goto(f"{live_server.url}/analyses/{photo.pk}/")
    page.wait_for_selector("#result", state="visible")
    text = page.inner_text("#summary")
    assert "photo" in text and "video" not in text and "Looked at the whole photo" in text
    assert "Face 1" in page.inner_text("#people") and "video" not in page.inner_text("#timings")
    check_page(page, "photo-result", tmp_path / "screenshots")


def _same_people(page, result: dict) -> None:
    """The cards, the windows' faces and the heat maps name the same people, numbered from 1."""
    cards = [int(n) for n in page.eval_on_selector_all("#people .person", "els => els.map(e => e.dataset.person)")]
    assert cards == [p["person_id"] + 1 for p in result["people"]] and min(cards) == 1
    for card, person in zip(page.locator("#people .person").all(), result["people"], strict=True):
        assert f"Person {person['person_id'] + 1}" in card.inner_text()
        assert f"{person['fake_probability']:.3f}" in card.inner_text()
    faces = page.eval_on_selector_all("#windows .face", "els => els.map(e => [e.dataset.person, e.innerText])")
    assert faces and all(f"Person {number}" in caption for number, caption in faces)
    maps = page.eval_on_selector_all("#heatmaps figure", "els => els.map(e => [e.dataset.person, e.innerText])")
    assert maps and all(caption.startswith(f"Person {number}") for number, caption in maps)
    named = re.findall(r"Person (\d+)", page.inner_text("#summary"))
    assert all(int(n) in cards for n in named), "the summary names people as the cards do"
