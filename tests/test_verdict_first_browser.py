"""In a real browser: a result page opened while its heat maps are drawn shows the verdict and the maps' own
progress, keeps polling, and puts the maps in place without a reload when they arrive."""

from __future__ import annotations

import shutil

import pytest
from django.utils import timezone

from ml_app.detection.stages import Stage
from ml_app.models import Analysis

from .test_browser import browser_page, fresh_rates  # noqa: F401 - fixtures
from .test_site import upload

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]


def test_the_page_shows_the_verdict_then_the_maps_when_they_arrive(
    live_server,
    client,
    active_checkpoint,
    one_face_video,
    settings,
    browser_page,  # noqa: F811
):
    from ml_app.tasks import analyze_video_task

    settings.DETECTION_HEATMAPS = "all"
    analysis_id = upload(client, one_face_video).json()["id"]
    analyze_video_task.run(analysis_id, 1)
    drawn = Analysis.objects.get(pk=analysis_id).result
    pending = {**drawn, "heatmaps": {**drawn["heatmaps"], "state": "pending", "maps": []}}
    Analysis.objects.filter(pk=analysis_id).update(
        result=pending, stage=Stage.HEATMAPS, heatmaps_progress=40.0, heartbeat_at=timezone.now()
    )
    page = browser_page
    page.goto(f"{live_server.url}/analyses/{analysis_id}/")
    address = page.url
    assert page.is_visible("#result") and page.inner_text("#verdict-label") in ("REAL", "FAKE", "INCONCLUSIVE")
    assert "Drawing heat maps · 40%" in page.inner_text("#heatmaps-progress")
    Analysis.objects.filter(pk=analysis_id).update(heatmaps_progress=75.0, heartbeat_at=timezone.now())
    page.wait_for_function("document.getElementById('heatmaps-progress').textContent.includes('75%')", timeout=15_000)
    Analysis.objects.filter(pk=analysis_id).update(result=drawn, stage=Stage.DONE, heatmaps_progress=None)
    page.wait_for_selector("#heatmaps figure.heatmap img", timeout=15_000)
    assert page.url == address, "no reload"
    assert page.locator("#heatmaps figure.heatmap").count() == len(drawn["heatmaps"]["maps"]) == 4
    assert page.locator("#heatmaps-progress").count() == 0
