"""A challenger beside the champion: scored by the real worker on its share of analyses, stored apart, never shown to
users; the comparison's figures follow from the stored results; promotion is one admin action."""

from __future__ import annotations

import statistics
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from ml_app import challenger, challenger_stats
from ml_app.models import Analysis, ChallengerResult, Checkpoint
from ml_app.registry import register

from .conftest import small_checkpoint
from .workers import make_broker, running_worker, use_broker, wait_for


def test_the_share_decides_which_analyses_are_challenged():
    ids = [uuid.uuid4() for _ in range(2000)]
    assert not any(challenger.chosen(i, 0) for i in ids)
    assert all(challenger.chosen(i, 100) for i in ids)
    picked = sum(challenger.chosen(i, 30) for i in ids) / len(ids)
    assert 0.25 < picked < 0.35
    assert [challenger.chosen(i, 30) for i in ids[:50]] == [challenger.chosen(i, 30) for i in ids[:50]], "stable"


@pytest.fixture
def challenger_checkpoint(active_checkpoint, tmp_path):
    path = small_checkpoint(tmp_path / "challenger_10_frames.pt", sequence_length=10)
    entry = register(path, Checkpoint.Source.MODELS_DIR)
    assert entry.pk != active_checkpoint.pk and not entry.is_active
    entry.challenger_share = 100
    entry.save()
    return entry


@pytest.mark.django_db(transaction=True)
def test_the_worker_scores_the_share_with_both_and_users_see_the_champion(
    client, active_checkpoint, challenger_checkpoint, one_face_video, two_face_video, tmp_path
):
    from django.core.cache import cache

    cache.clear()

    def upload(path):
        response = client.post(
            "/analyses/",
            {"video": SimpleUploadedFile(path.name, path.read_bytes()), "sequence_length": "10"},
            HTTP_ACCEPT="application/json",
        )
        assert response.status_code == 202, response.content
        return Analysis.objects.get(pk=response.json()["id"])

    broker = make_broker("filesystem", tmp_path)
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log") as worker:
        first = upload(one_face_video)
        wait_for(lambda: ChallengerResult.objects.filter(analysis=first).exists(), 180, what="the challenger")
        first.refresh_from_db()
        assert first.status == Analysis.Status.DONE, first.error_message + worker.log()[-2000:]
        record = ChallengerResult.objects.get(analysis=first)
        assert record.challenger_sha256 == challenger_checkpoint.sha256 and not record.error_code
        assert record.champion_sha256 == active_checkpoint.sha256
        assert record.agrees == (record.verdict == first.verdict) and record.seconds > 0
        shown = client.get(f"/analyses/{first.pk}/status").json()
        assert shown["result"]["checkpoint"]["sha256"] == active_checkpoint.sha256
        assert challenger_checkpoint.sha256 not in str(shown), "users see the champion's result only"

        Checkpoint.objects.filter(pk=challenger_checkpoint.pk).update(challenger_share=0)
        second = upload(two_face_video)
        wait_for(lambda: (second.refresh_from_db(), second.is_finished)[1], 120, what="the second analysis")
        assert second.status == Analysis.Status.DONE
    assert not ChallengerResult.objects.filter(analysis=second).exists(), "a share of 0 challenges nothing"


def _result(champion, challenger_entry, verdicts, scores, seconds):
    analysis = Analysis.objects.create(
        original_name="v.mp4",
        video="x.mp4",
        sha256=uuid.uuid4().hex,
        sequence_length=10,
        checkpoint=champion,
        checkpoint_sha256=champion.sha256,
        status=Analysis.Status.DONE,
        verdict=verdicts[0],
        fake_probability=scores[0],
    )
    return ChallengerResult.objects.create(
        analysis=analysis,
        checkpoint=challenger_entry,
        champion_name=champion.name,
        champion_sha256=champion.sha256,
        challenger_name=challenger_entry.name,
        challenger_sha256=challenger_entry.sha256,
        verdict=verdicts[1],
        fake_probability=scores[1],
        seconds=seconds[1],
        champion_seconds=seconds[0],
        agrees=verdicts[0] == verdicts[1],
    )


@pytest.mark.django_db
def test_the_comparison_matches_the_stored_results(active_checkpoint, challenger_checkpoint, admin_client, capsys):
    rows = [
        (("FAKE", "FAKE"), (0.9, 0.8), (2.0, 1.0)),
        (("REAL", "FAKE"), (0.1, 0.7), (4.0, 3.0)),
        (("REAL", "REAL"), (0.2, 0.1), (3.0, 2.0)),
        (("FAKE", "FAKE"), (0.8, 0.95), (3.0, 2.0)),
    ]
    made = [_result(active_checkpoint, challenger_checkpoint, *row) for row in rows]
    [pair] = challenger_stats.compare()
    assert pair.analyses == 4 and pair.agreeing == 3 and pair.agreement == 0.75
    expected = statistics.correlation([r[1][0] for r in rows], [r[1][1] for r in rows])
    assert pair.correlation == pytest.approx(expected)
    assert pair.champion_mean_seconds == 3.0 and pair.challenger_mean_seconds == 2.0
    assert [row.pk for row in pair.disagreements] == [made[1].pk]

    call_command("compare_models")
    printed = capsys.readouterr().out
    assert "verdicts agree: 75.0% (3 of 4)" in printed and f"{expected:.3f}" in printed
    assert str(made[1].analysis_id) in printed

    page = admin_client.get("/admin/ml_app/challengerresult/").content.decode()
    assert "75 % (3 of 4)" in page and f"{expected:.3f}" in page

    response = admin_client.post(
        "/admin/ml_app/checkpoint/",
        {"action": "promote_challenger", "_selected_action": [challenger_checkpoint.pk]},
    )
    assert response.status_code == 302
    challenger_checkpoint.refresh_from_db()
    active_checkpoint.refresh_from_db()
    assert challenger_checkpoint.is_active and challenger_checkpoint.challenger_share is None
    assert not active_checkpoint.is_active


@pytest.mark.django_db
def test_an_ensemble_can_be_the_challenger(active_checkpoint, tmp_path, one_face_video, settings):
    import shutil

    from ml_app.detection.files import combined_sha256
    from ml_app.models import Ensemble

    members = [
        register(small_checkpoint(tmp_path / f"member{i}_10_frames.pt", sequence_length=10), "models_dir")
        for i in range(2)
    ]
    ensemble = Ensemble.objects.create(name="pair", challenger_length=10, challenger_share=100)
    ensemble.members.set(members)
    analysis = Analysis.objects.create(
        original_name="clip.mp4",
        video="analyses/x/video.mp4",
        sha256="0" * 64,
        sequence_length=10,
        checkpoint=active_checkpoint,
        checkpoint_sha256=active_checkpoint.sha256,
        status=Analysis.Status.DONE,
        verdict="REAL",
        fake_probability=0.3,
    )
    analysis.video_path.parent.mkdir(parents=True)
    shutil.copy(one_face_video, analysis.video_path)
    record = challenger.score(analysis, {"verdict": "REAL"}, 1.0)
    assert record is not None and not record.error_code, record and record.error_message
    assert record.challenger_name == "ensemble pair" and record.checkpoint is None
    assert record.challenger_sha256 == combined_sha256([m.sha256 for m in members])
    assert record.verdict in ("REAL", "FAKE", "INCONCLUSIVE") and record.agrees == (record.verdict == "REAL")
