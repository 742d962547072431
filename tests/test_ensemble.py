"""Ensembles: several checkpoints as one choice, their calibrated answers averaged, in the core, MODEL_MAPPING, the
registry, the API, the upload page and the command line."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from ml_app.detection.calibration import Calibration, Thresholds, score_rule
from ml_app.detection.checkpoints import load_checkpoint, save_checkpoint
from ml_app.detection.ensemble import Member, analyze_with_ensemble, combine
from ml_app.detection.files import combined_sha256
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.model_mapping import split_mapping
from ml_app.detection.prediction import analyze_video
from ml_app.detection.results import AnalysisResult

from .conftest import small_checkpoint
from .test_api import assert_error, post_video, run_inline, token_client


def calibrated(source, path, temperature: float, fake: float = 0.6, real: float = 0.4):
    checkpoint = load_checkpoint(source)
    checkpoint.training = {"untrained": False}
    checkpoint.calibration = Calibration("temperature", {"temperature": temperature}, Thresholds(fake, real))
    save_checkpoint(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two calibrated 8-frame checkpoints with different weights and calibrations, and a 10-frame one."""
    folder = tmp_path_factory.mktemp("ensemble")
    first = small_checkpoint(folder / "a_raw.pt")
    second = small_checkpoint(folder / "b_raw.pt")  # a fresh random initialisation: other weights
    third = small_checkpoint(folder / "c_raw.pt", sequence_length=10)
    return [
        calibrated(first, folder / "a.pt", 0.5, fake=0.7, real=0.3),
        calibrated(second, folder / "b.pt", 3.0, fake=0.5, real=0.5),
        calibrated(third, folder / "c.pt", 1.0),
    ]


def test_an_ensembles_probability_is_the_mean_of_its_members_calibrated_probabilities(members, one_face_video):
    loaded = [load_detector_model(path, "cpu") for path in members]
    alone = [analyze_video(one_face_video, one, max_windows=2) for one in loaded]
    together = analyze_with_ensemble(
        one_face_video, "trio", [Member(one, score_rule(one.checkpoint.calibration)) for one in loaded], max_windows=2
    )
    expected = sum(result.fake_probability for result in alone) / 3
    assert together.fake_probability == pytest.approx(expected, abs=1e-9)
    assert [m["fake_probability"] for m in together.ensemble["members"]] == pytest.approx(
        [result.fake_probability for result in alone]
    )
    assert [m["sequence_length"] for m in together.ensemble["members"]] == [8, 8, 10], "each on its own windows"
    t = together.thresholds
    assert (t.fake, t.real, t.source) == (pytest.approx(0.6), pytest.approx(0.4), "ensemble mean"), "members' mean"
    assert together.ensemble["identity"] == combined_sha256([one.checkpoint.sha256 for one in loaded])
    assert together.calibration["calibrated"] and "mean of 3" in together.calibration["meaning"]
    payload = together.to_dict()
    assert payload["ensemble"]["name"] == "trio" and payload["windows"] == alone[0].to_dict()["windows"]


def _member_result(probability: float | None, name: str) -> AnalysisResult:
    result = AnalysisResult(verdict="INCONCLUSIVE", sequence_length=10, video={}, checkpoint={"name": name})
    result.fake_probability = probability
    if probability is None:
        result.reason = {"code": "no_face", "message": "No face was found."}
    return result


def test_members_that_disagree_are_not_averaged_into_real_and_unscored_members_are_left_out():
    rules = [score_rule(None)] * 2
    torn = combine("pair", [_member_result(0.05, "a"), _member_result(0.7, "b")], rules, Thresholds(0.8, 0.45))
    assert torn.fake_probability == pytest.approx(0.375) and torn.verdict == "INCONCLUSIVE"
    assert torn.reason["code"] == "members_disagree" and "0.05 to 0.70" in torn.reason["message"]
    agreeing = combine("pair", [_member_result(0.1, "a"), _member_result(0.2, "b")], rules, Thresholds(0.8, 0.45))
    assert agreeing.verdict == "REAL" and agreeing.confidence == pytest.approx(0.85)
    partial = combine("pair", [_member_result(None, "a"), _member_result(0.9, "b")], rules, Thresholds(0.8, 0.45))
    assert partial.verdict == "FAKE" and partial.fake_probability == pytest.approx(0.9)
    assert any("1 of 2 checkpoints scored no window" in w for w in partial.warnings)
    nothing = combine("pair", [_member_result(None, "a"), _member_result(None, "b")], rules)
    assert nothing.verdict == "INCONCLUSIVE" and nothing.reason["code"] == "no_face"


def test_model_mapping_names_ensembles_beside_lengths():
    lengths, ensembles = split_mapping({"20": "a.pt", "seeds": ["s0.pt", "s1.pt"], "all": [10, "20", 40]})
    assert lengths == {20: "a.pt"} and ensembles == {"seeds": ["s0.pt", "s1.pt"], "all": [10, 20, 40]}
    with pytest.raises(ValueError, match="one checkpoint file"):
        split_mapping({"20": ["a.pt", "b.pt"]})
    with pytest.raises(ValueError, match="list of lengths or files"):
        split_mapping({"mix": "a.pt"})
    with pytest.raises(ValueError, match="neither a sequence length nor a file"):
        split_mapping({"mix": [True]})


def test_analyze_video_runs_an_ensemble_of_given_checkpoints(members, one_face_video):
    out = StringIO()
    call_command(
        "analyze_video",
        str(one_face_video),
        "--checkpoint",
        str(members[0]),
        "--checkpoint",
        str(members[1]),
        "--max-windows",
        "2",
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    assert result["ensemble"]["name"] == "given" and len(result["checkpoint_choice"]) == 2
    scores = [m["fake_probability"] for m in result["ensemble"]["members"]]
    assert result["fake_probability"] == pytest.approx(sum(scores) / 2, abs=1e-6)
    summary = StringIO()
    call_command(
        "analyze_video",
        str(one_face_video),
        "--checkpoint",
        str(members[0]),
        "--checkpoint",
        str(members[2]),
        "--max-windows",
        "2",
        stdout=summary,
    )
    assert "ensemble 'given' (mean of 2 checkpoints" in summary.getvalue()


# --- the site and the API ---------------------------------------------------------------------------------------


@pytest.fixture
def ensemble(site_dirs, members, db, settings):
    """Ensemble 'pair' of the active 10-frame checkpoint and a second 10-frame file, as sync_checkpoints makes it
    from MODEL_MAPPING."""
    from ml_app.registry import sync_checkpoints

    tiny_10 = small_checkpoint(site_dirs / "models" / "tiny_10_frames.pt", sequence_length=10)
    calibrated(tiny_10, tiny_10, 1.5)
    settings.MODEL_MAPPING = {10: str(tiny_10)}
    settings.MODEL_ENSEMBLES = {"pair": [10, str(members[2])]}
    sync_checkpoints()
    from ml_app.models import Ensemble

    entry = Ensemble.objects.get(name="pair")
    assert [m.sequence_length for m in entry.current_members()] == [10, 10]
    return entry


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.mark.django_db(transaction=True)
def test_an_ensemble_upload_is_analysed_by_every_member_in_its_job(ensemble, alice, one_face_video):
    client = token_client(alice)
    listed = client.get("/api/v1/ensembles/").json()
    assert listed[0]["name"] == "pair" and len(listed[0]["members"]) == 2
    response = client.post(
        "/api/v1/analyses/",
        {"video": _upload(one_face_video), "ensemble": "pair"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    created = response.json()
    assert created["ensemble_name"] == "pair"
    analysis = run_inline(created["id"])
    assert analysis.status == "done", analysis.error_message
    body = client.get(created["url"]).json()
    result = body["result"]
    members = result["ensemble"]["members"]
    assert len(members) == 2 and result["fake_probability"] == pytest.approx(
        sum(m["fake_probability"] for m in members) / 2, abs=1e-5
    )
    assert analysis.checkpoint_sha256 == combined_sha256([m.sha256 for m in ensemble.current_members()])
    # the same video with the same ensemble reuses the result; one checkpoint alone does not
    again = client.post("/api/v1/analyses/", {"video": _upload(one_face_video), "ensemble": "pair"}, format="multipart")
    assert again.json()["reused"] is True
    alone = post_video(client, one_face_video.read_bytes(), length=10).json()
    assert alone["reused"] is False and alone["ensemble_name"] == ""


@pytest.mark.django_db
def test_an_unknown_ensemble_is_refused_on_its_field(ensemble, alice, one_face_video, client):
    api = token_client(alice)
    response = api.post("/api/v1/analyses/", {"video": _upload(one_face_video), "ensemble": "nope"}, format="multipart")
    error = assert_error(response, 400, "unknown_ensemble", "There is no active ensemble 'nope'; choose one of: pair")
    assert error["fields"] == {"ensemble": [error["message"]]}
    page = client.get("/").content.decode()
    assert 'name="ensemble"' in page and "pair: the mean of" in page
    ensemble.is_active = False
    ensemble.save()
    assert 'name="ensemble"' not in client.get("/").content.decode(), "an inactive ensemble is not offered"


def _upload(path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")


def test_combined_identity_ignores_order():
    assert combined_sha256(["a", "b"]) == combined_sha256(["b", "a"]) != combined_sha256(["a", "c"])
    assert len(combined_sha256(["a"])) == 64


@pytest.mark.django_db
def test_the_admin_lists_ensembles_with_their_members_now(ensemble, admin_client):
    page = admin_client.get("/admin/ml_app/ensemble/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "pair" in text and "tiny_10_frames (10 frames)" in text and "needs two" not in text
    ensemble.lengths = []
    ensemble.save()
    ensemble.members.clear()
    assert "needs two to be offered" in admin_client.get("/admin/ml_app/ensemble/").content.decode()
