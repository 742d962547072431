"""The verdict first, the heat maps after: a real worker saves the result before it draws the maps; the API and the
page say pending (with the maps' own progress), done, off or failed; a map that cannot be drawn leaves the analysis
done with its verdict."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from ml_app.detection.stages import Stage
from ml_app.models import Analysis

from .test_site import upload
from .workers import make_broker, running_worker, use_broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the job's heartbeat thread and the worker write too


@pytest.fixture(autouse=True)
def fresh_rates():
    cache.clear()
    yield
    cache.clear()


def status(client, analysis_id) -> dict:
    return client.get(f"/analyses/{analysis_id}/status").json()


def test_a_real_worker_saves_the_verdict_before_it_draws_the_maps(client, active_checkpoint, one_face_video, tmp_path):
    broker = make_broker("filesystem", tmp_path)
    env = {"DETECTION_HEATMAPS": "all"}
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log", env) as worker:
        analysis_id = upload(client, one_face_video).json()["id"]
        final = wait_for(
            lambda: (s := status(client, analysis_id))["heatmaps"] in ("done", "failed") and s, 180, what="the maps"
        )
        assert final["heatmaps"] == "done", worker.log()[-3000:]
    analysis = Analysis.objects.get(pk=analysis_id)
    assert analysis.status == Analysis.Status.DONE and analysis.stage == Stage.DONE and analysis.progress == 100.0
    assert final["heatmaps_progress"] is None and analysis.heatmaps_progress is None
    maps = analysis.result["heatmaps"]["maps"]
    assert len(maps) == analysis.result["windows_scored"] == 4 and analysis.timings["heatmaps"] > 0
    files = sorted(analysis.crops_dir.glob("*_heatmap.png"))
    assert len(files) == 4
    verdict_saved = analysis.finished_at.timestamp()
    assert min(f.stat().st_mtime for f in files) >= verdict_saved, "the maps were written after the verdict was saved"
    assert min(f.stat().st_mtime for f in analysis.crops_dir.glob("*_thumb.jpg")) <= verdict_saved
    html = client.get(f"/analyses/{analysis_id}/").content.decode()
    assert 'id="heatmaps"' in html and html.count("_heatmap.png") == 4


@pytest.fixture
def analysed(client, active_checkpoint, one_face_video, settings) -> Analysis:
    """An upload analysed in this process as the worker does it, with a map for every window."""
    from ml_app.tasks import analyze_video_task

    settings.DETECTION_HEATMAPS = "all"
    analysis_id = upload(client, one_face_video).json()["id"]
    analyze_video_task.run(analysis_id, 1)
    return Analysis.objects.get(pk=analysis_id)


def test_while_the_maps_are_drawn_the_api_and_the_page_say_so_with_their_progress(client, analysed):
    assert status(client, analysed.pk)["heatmaps"] == "done"
    result = dict(analysed.result)
    result["heatmaps"] = {**result["heatmaps"], "state": "pending", "maps": []}
    Analysis.objects.filter(pk=analysed.pk).update(
        result=result, stage=Stage.HEATMAPS, heatmaps_progress=40.0, heartbeat_at=timezone.now()
    )
    state = status(client, analysed.pk)
    assert state["status"] == "done" and state["result"]["verdict"] == analysed.verdict, "the verdict is shown"
    assert state["heatmaps"] == "pending" and state["heatmaps_progress"] == 40.0 and state["progress"] == 100.0
    assert state["stage_label"] == "Drawing heat maps"
    html = client.get(f"/analyses/{analysed.pk}/").content.decode()
    assert 'id="heatmaps-progress"' in html and "Drawing heat maps · 40%" in html and 'id="heatmaps"' not in html

    Analysis.objects.filter(pk=analysed.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    state = status(client, analysed.pk)
    assert state["heatmaps"] == "failed" and state["heatmaps_progress"] is None, "a dead worker's maps never come"
    html = client.get(f"/analyses/{analysed.pk}/").content.decode()
    assert "The worker stopped before the heat maps were drawn" in html and 'id="heatmaps-progress"' not in html


def test_an_analysis_still_drawing_its_maps_is_not_reused(client, analysed, one_face_video):
    Analysis.objects.filter(pk=analysed.pk).update(stage=Stage.HEATMAPS)
    again = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    assert again.reused_from_id is None and again.status == Analysis.Status.QUEUED


def test_maps_off_say_off(client, active_checkpoint, one_face_video, settings):
    from ml_app.tasks import analyze_video_task

    settings.DETECTION_HEATMAPS = "off"
    analysis_id = upload(client, one_face_video).json()["id"]
    analyze_video_task.run(analysis_id, 1)
    state = status(client, analysis_id)
    assert state["status"] == "done" and state["heatmaps"] == "off" and state["heatmaps_progress"] is None
    assert Analysis.objects.get(pk=analysis_id).stage == Stage.DONE


def test_a_map_that_cannot_be_drawn_leaves_the_analysis_done_with_its_verdict(
    client, active_checkpoint, one_face_video, settings, monkeypatch
):
    """The drawing fails as it would when the worker runs out of memory in the backward pass."""
    from ml_app.detection import heatmaps
    from ml_app.tasks import analyze_video_task

    def out_of_memory(*_args, **_kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory")

    monkeypatch.setattr(heatmaps, "compute_heatmaps", out_of_memory)
    settings.DETECTION_HEATMAPS = "all"
    analysis_id = upload(client, one_face_video).json()["id"]
    analyze_video_task.run(analysis_id, 1)
    analysis = Analysis.objects.get(pk=analysis_id)
    assert analysis.status == Analysis.Status.DONE and analysis.verdict in ("REAL", "FAKE", "INCONCLUSIVE")
    assert analysis.error_code == "" and analysis.stage == Stage.DONE
    state = status(client, analysis_id)
    assert state["heatmaps"] == "failed" and state["result"]["verdict"] == analysis.verdict
    html = client.get(f"/analyses/{analysis_id}/").content.decode()
    assert "not enough memory" in html and "_heatmap.png" not in html


def test_saving_the_evidence_reports_its_own_advancing_fraction(tmp_path):
    from ml_app.detection.results import AnalysisResult, TrackScore, WindowResult

    from .test_heatmaps import crops

    result = AnalysisResult(verdict="REAL", sequence_length=8, video={}, checkpoint={"sha256": "x"})
    for index in range(4):
        window = WindowResult(index, index * 8, index * 8 + 7, 0.0, 0.3, 8, "scored", 1)
        window.tracks.append(TrackScore(0, 0, 0.1, [[0, 0, 1, 1]] * 8, 0, crops=crops(8, index)))
        result.windows.append(window)
    heard: list[float] = []
    result.save_crops(tmp_path, progress=heard.append)
    assert heard == sorted(heard) and heard[0] == 0.0 and heard[-1] == 1.0 and len(set(heard)) == 5
