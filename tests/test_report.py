"""The PDF report, parsed back with pypdf: what it says (verdict and why, the checkpoint's and the file's sha256, one
page per person up to ten, heat maps and Content Credentials when the result has them, the limits), from the
command line (--report) and from the site and the API (report.pdf: the owner's, finished analyses only)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import re
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from pypdf import PdfReader

from ml_app.detection.report import MAX_PEOPLE, ReportSource, render_report
from ml_app.detection.report.wording import checkpoint_rows, limits

from . import media

TWO_FACES = ((30, 60, 220), (420, 80, 220))


def pages_of(pdf: bytes) -> list[str]:
    """The text of each page (line breaks and the wrapping of long values taken out of the way)."""
    assert pdf.startswith(b"%PDF-"), pdf[:100]
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def flat(pages: list[str]) -> str:
    return " ".join(" ".join(pages).split())


def person_pages(pages: list[str]) -> list[str]:
    return [page for page in pages if "Person page " in page]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_command(name: str, *args) -> str:
    out = StringIO()
    call_command(name, *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


def analysed_report(tmp_path: Path, video: Path, checkpoint: Path, *extra) -> tuple[list[str], dict]:
    """analyze_video --json --report: the report's pages and the result it reports."""
    report = tmp_path / "report.pdf"
    result = json.loads(
        run_command("analyze_video", video, "--checkpoint", checkpoint, "--json", "--report", report, *extra)
    )
    return pages_of(report.read_bytes()), result


# --- from the command line ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_person_report(tmp_path_factory, two_face_video, tiny_checkpoint):
    return analysed_report(tmp_path_factory.mktemp("report"), two_face_video, tiny_checkpoint)


def test_a_report_holds_the_verdict_and_both_sha256s(two_person_report, two_face_video, tiny_checkpoint):
    pages, result = two_person_report
    assert result["verdict"] in pages[0] and "Deepfake analysis report" in pages[0]
    text = flat(pages)
    assert result["checkpoint"]["sha256"] == sha256_of(tiny_checkpoint) and sha256_of(tiny_checkpoint) in text
    assert sha256_of(two_face_video) in text, "the video's sha256, computed from the file"
    assert "two_faces.mp4" in text and "25.00 frames per second" in text and "720 x 360 pixels" in text
    assert "untrained" in pages[0] and "this verdict means nothing" in pages[0], "the small checkpoint is untrained"
    assert "Fake probability over the video" in text and "The limits of the method" in pages[-1]
    assert "A probability is not proof" in pages[-1] and "INCONCLUSIVE is an honest answer" in pages[-1]


def test_each_person_of_a_two_person_video_has_one_page(two_person_report):
    pages, result = two_person_report
    assert len(result["people"]) == 2
    mine = person_pages(pages)
    assert len(mine) == 2
    for person, page in zip(result["people"], mine, strict=True):
        assert f"Person {person['person_id'] + 1}" in page and f"{person['fake_probability']:.3f}" in page
        for window in person["windows"]:
            assert f"#{window}" in page, "the table of the person's windows"


def test_a_report_shows_no_path_of_the_machine(two_person_report, tiny_checkpoint, tmp_path_factory):
    text = flat(two_person_report[0])
    assert str(tiny_checkpoint.parent) not in text and "report-crops-" not in text


def test_a_faceless_video_is_inconclusive_and_the_report_says_why(tmp_path, faceless_video, tiny_checkpoint):
    pages, result = analysed_report(tmp_path, faceless_video, tiny_checkpoint)
    assert result["verdict"] == "INCONCLUSIVE" and result["reason"]["code"] == "no_face"
    first = " ".join(pages[0].split())
    assert "INCONCLUSIVE" in first and "The model cannot tell whether this video is manipulated." in first
    message = " ".join(result["reason"]["message"].split())
    assert f"Not decided: {message[0].lower()}{message[1:]}" in first and first.count(message[1:]) == 1
    assert person_pages(pages) == [] and "No face was scored." in first


def test_a_report_path_that_cannot_be_written_is_refused_before_the_analysis(tmp_path, one_face_video, tiny_checkpoint):
    for path, expected in (
        (tmp_path / "missing" / "report.pdf", "does not exist"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(CommandError, match=expected):
            run_command("analyze_video", one_face_video, "--checkpoint", tiny_checkpoint, "--report", path)
    assert not (tmp_path / "missing").exists()


def test_the_summary_says_where_the_report_is_and_heat_maps_join_it(tmp_path, one_face_video, tiny_checkpoint):
    report, crops = tmp_path / "r.pdf", tmp_path / "crops"
    args = ["--max-windows", "1", "--heatmaps", "all", "--report", report, "--save-crops", crops]
    summary = run_command("analyze_video", one_face_video, "--checkpoint", tiny_checkpoint, *args)
    assert f"report written to {report}" in summary
    assert (crops / "person0.jpg").is_file(), "--save-crops keeps its crops; the report used them"
    (page,) = person_pages(pages_of(report.read_bytes()))
    assert "Heat maps" in page and "window #0, frame" in page


def test_a_photo_gives_a_report_with_a_page_per_face(tmp_path, frame_checkpoint):
    photo = media.photo(tmp_path / "two.jpg", width=720, height=360, faces=TWO_FACES)
    report = tmp_path / "photo.pdf"
    result = json.loads(
        run_command("analyze_image", photo, "--checkpoint", frame_checkpoint, "--json", "--report", report)
    )
    pages = pages_of(report.read_bytes())
    text = flat(pages)
    assert result["verdict"] in pages[0] and sha256_of(photo) in text and sha256_of(frame_checkpoint) in text
    assert "The faces in the photo" in text and "JPEG" in text and "1 (a frame model)" in text
    faces = person_pages(pages)
    assert len(faces) == len(result["people"]) == 2
    assert "Face 1" in faces[0] and "Face 2" in faces[1] and "box (pixels)" in faces[0]
    assert "Face 1: " in text, "the boxes are labelled on the photo"
    gone = flat(pages_of(render_report(ReportSource(result, photo.name, "0" * 64, dt.datetime.now(dt.UTC)))))
    assert "The photo is no longer stored" in gone and "Face 2" in gone


def test_only_the_files_save_crops_writes_are_read(tmp_path):
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "person0.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    files = {"people": {"0": "person0.jpg", "1": "../secret.jpg", "2": "/etc/passwd"}, "windows": {}}
    report = ReportSource({"crop_files": files}, "a.mp4", "0" * 64, dt.datetime.now(dt.UTC), tmp_path / "crops")
    assert report.person_thumbnail(0) == tmp_path / "crops" / "person0.jpg"
    assert report.person_thumbnail(1) is None and report.person_thumbnail(2) is None
    assert report.person_thumbnail(3) is None and report.track_files(0, 0) == {}


# --- the report itself, from result dicts ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_result(two_person_report) -> dict:
    return two_person_report[1]


def source(result: dict, **extra) -> ReportSource:
    return ReportSource(
        result=result,
        media_name="clip.mp4",
        media_sha256="ab" * 32,
        analysed_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        **extra,
    )


def crowd(base: dict, count: int) -> dict:
    """The result with ``count`` people: person i appears in window i % windows, with a rising fake probability."""
    result = copy.deepcopy(base)
    template = result["windows"][0]["tracks"][0]
    for window in result["windows"]:
        window["tracks"] = []
    people = []
    for person_id in range(count):
        window = result["windows"][person_id % len(result["windows"])]
        probability = round(0.05 + 0.9 * person_id / count, 3)
        window["tracks"].append(
            {**template, "track_id": len(window["tracks"]), "person_id": person_id, "fake_probability": probability}
        )
        people.append(
            {
                "person_id": person_id,
                "windows": [window["index"]],
                "fake_probability": probability,
                "raw_probability": probability,
                "window_probabilities": [probability],
                "disagreement": 0.0,
                "verdict": "FAKE" if probability >= 0.5 else "REAL",
                "reason": None,
            }
        )
    result["people"] = people
    return result


def test_at_most_ten_people_get_a_page_and_the_report_says_who_was_left_out(base_result):
    pages = pages_of(render_report(source(crowd(base_result, 12))))
    mine = person_pages(pages)
    assert len(mine) == MAX_PEOPLE == 10
    assert all(f"Person page {n} of 10" in page for n, page in enumerate(mine, 1))
    text = flat(pages)
    assert "2 more were left out (Person 1, Person 2)" in text, "the two least suspicious"
    assert "Person 12" in text and "Person 1" in pages[0], "the summary table lists everyone, numbered from 1"
    headings = [int(re.search(r"^Person (\d+)$", page, re.M).group(1)) for page in mine]
    assert headings == list(range(3, 13)), "the ten most suspicious, in their order"


def test_a_person_page_stays_one_page_however_many_windows(base_result):
    result = copy.deepcopy(base_result)
    template = result["windows"][0]
    result["windows"] = [{**copy.deepcopy(template), "index": i} for i in range(40)]
    person = result["people"][0]
    result["people"] = [{**person, "windows": list(range(40)), "window_probabilities": [0.4] * 40}]
    for window in result["windows"]:
        window["tracks"] = [t for t in window["tracks"] if t["person_id"] == person["person_id"]]
    pages = pages_of(render_report(source(result)))
    assert len(person_pages(pages)) == 1 and "16 more windows are not listed here" in flat(pages)


def test_inconclusive_reasons_are_explained(base_result):
    result = {
        **base_result,
        "verdict": "INCONCLUSIVE",
        "confidence": None,
        "reason": {"code": "windows_disagree", "message": "The windows of person 1 disagree: from 0.13 to 0.84."},
    }
    first = " ".join(pages_of(render_report(source(result)))[0].split())
    assert "Not decided: the windows of person 1 disagree: from 0.13" in first
    assert first.count("disagree: from 0.13") == 1, "said once"
    assert "Looked at" in first and "of the" in first, "how much of the video was looked at"


def test_an_ensemble_report_lists_each_member_with_its_sha256(base_result):
    members = [
        {
            "name": f"model_{n}",
            "sha256": f"{n}" * 64,
            "sequence_length": n * 10,
            "verdict": "FAKE",
            "fake_probability": 0.7 + n / 100,
            "windows_scored": 3,
        }
        for n in (1, 2)
    ]
    ensemble = {"name": "pair", "combine": "mean", "members": members, "evidence_from": "model_1"}
    text = flat(pages_of(render_report(source({**base_result, "ensemble": ensemble}))))
    assert "The checkpoints of the ensemble" in text and "ensemble 'pair'" in text
    assert "1" * 64 in text and "2" * 64 in text and "0.720" in text


def test_content_credentials_are_shown_apart_from_the_verdict(base_result):
    provenance = {
        "present": True,
        "state": "valid",
        "summary": "This file says it was made by Test AI Generator 1.0",
        "generator": "Test AI Generator 1.0",
        "signer": {"name": "Test Signer", "organization": "Test Inc", "issuer": "Test CA", "time": None},
        "actions": [{"action": "c2pa.created", "description": "created: made by an AI generator", "when": None}],
        "ai": "made by an AI generator",
        "ingredients": 0,
        "manifests": 1,
        "problems": [],
        "trust": "not_checked",
        "trust_explanation": "no trust list is configured",
    }
    pages = pages_of(render_report(source({**base_result, "provenance": provenance})))
    closing = " ".join(pages[-1].split())
    assert "Content Credentials (separate from the verdict)" in closing
    for shown in (
        "made by Test AI Generator 1.0",
        "Test Signer, Test Inc",
        "created: made by an AI generator",
        "no trust list is configured",
        "Content Credentials are a separate check",
    ):
        assert shown in closing
    none = pages_of(
        render_report(
            source(
                {**base_result, "provenance": {"present": False, "state": "none", "summary": "No Content Credentials"}}
            )
        )
    )
    assert "No Content Credentials" in none[-1]
    unread = {key: value for key, value in base_result.items() if key != "provenance"}  # analysed before they were
    assert "Content Credentials" not in flat(pages_of(render_report(source(unread))))


def test_heat_maps_are_on_the_person_page_when_the_result_has_them(base_result, tmp_path):
    from PIL import Image

    result = copy.deepcopy(base_result)
    window, track = result["windows"][0], result["windows"][0]["tracks"][0]
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "map.png")
    Image.new("RGB", (64, 64), (90, 90, 90)).save(tmp_path / "crop.jpg")
    files = {"thumb": "crop.jpg", "heatmap": "map.png", "heatmap_crop": "crop.jpg"}
    result["crop_files"] = {"windows": {str(window["index"]): {str(track["track_id"]): files}}, "people": {}}
    result["heatmaps"] = {
        "maps": [
            {
                "window": window["index"],
                "track_id": track["track_id"],
                "frame": 3,
                "video_frame": window["start_frame"] + 3,
            }
        ]
    }
    pages = person_pages(pages_of(render_report(source(result, crops_dir=tmp_path))))
    with_maps = [page for page in pages if "Heat maps" in page]
    assert len(with_maps) == 1 and f"frame {window['start_frame'] + 3}" in with_maps[0]
    assert "not proof of an edit" in " ".join(with_maps[0].split())
    assert not any("Heat maps" in page for page in person_pages(pages_of(render_report(source(base_result)))))


def test_checkpoint_identity_names_its_training_and_figures_but_never_a_path():
    checkpoint = {
        "name": "default_20",
        "sha256": "cd" * 32,
        "sequence_length": 20,
        "untrained": False,
        "architecture": {"backbone": "mobilenet_v2", "head": "mean"},
        "preprocessing": {"detector": {"backend": "face_recognition", "model": "hog", "max_side": 640}},
        "training": {
            "datasets": ["shared-data"],
            "clips": {"train": {"FAKE": 7, "REAL": 76}},
            "config": {"synthesize_fakes": "sbi", "manifest": "/work/runs/clips/manifest.json"},
        },
        "origin": {
            "made_by": "manage.py train_model",
            "source_file": "/home/someone/model.pt",
            "test_report": "runs/default_model/train_20/test",
        },
        "metrics": {
            "accuracy": 0.769,
            "auc": 0.881,
            "validation": {"accuracy": 0.9, "auc": 0.95, "clips": 41},
            "test": {"video": {"n": 13, "accuracy": 0.769, "auc": 0.88}},
        },
        "calibration": {"method": "platt", "fitted_on": {"split": "validation", "clips": {"REAL": 19, "FAKE": 22}}},
    }
    text = " | ".join(f"{label}: {value}" for label, value in checkpoint_rows(checkpoint))
    for shown in (
        "sha256: " + "cd" * 32,
        "shared-data",
        "train: 7 FAKE, 76 REAL",
        "accuracy 76.9%",
        "AUC 0.881",
        "Validation: accuracy 90.0%, AUC 0.950 (41 clips)",
        "Test (video level): accuracy 76.9%",
        "face_recognition, hog",
        "platt, fitted on the validation split; 19 REAL, 22 FAKE clips",
        "self-blended",
        "Origin: made by: manage.py train_model",
    ):
        assert shown in text, shown
    assert "/work/" not in text and "/home/" not in text and "runs/" not in text
    assert "shared-data" in limits({"checkpoint": checkpoint})[0]


# --- the site and the API -------------------------------------------------------------------------------------------


def upload(client, path: Path, name: str = "clip.mp4", **extra):
    return client.post(
        reverse("ml_app:create"),
        {"video": SimpleUploadedFile(name, path.read_bytes()), "sequence_length": "10"},
        **extra,
    )


def finish(analysis_id) -> None:
    from ml_app.models import Analysis
    from ml_app.tasks import analyze_video_task

    analyze_video_task.run(str(analysis_id), 1)
    analysis = Analysis.objects.get(pk=analysis_id)
    assert analysis.status == Analysis.Status.DONE, analysis.error_message


@pytest.fixture
def fresh_rates(settings):
    """No upload spent yet; no heat maps in the worker (the command line's test has them: they cost seconds)."""
    from django.core.cache import cache

    settings.DETECTION_HEATMAPS = "off"
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db(transaction=True)
def test_the_site_serves_the_report_of_a_finished_analysis(
    client, active_checkpoint, two_face_video, settings, fresh_rates
):
    from ml_app.models import Analysis

    analysis_id = upload(client, two_face_video, "Our interview.mp4", HTTP_ACCEPT="application/json").json()["id"]
    url = reverse("ml_app:analysis-report", args=[analysis_id])
    queued = client.get(url)
    assert queued.status_code == 409 and "not finished yet" in queued.content.decode()
    finish(analysis_id)
    analysis = Analysis.objects.get(pk=analysis_id)
    assert f'href="{url}"' in client.get(reverse("ml_app:analysis", args=[analysis_id])).content.decode()
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    day = analysis.finished_at.strftime("%Y-%m-%d")
    assert f'filename="Our-interview-{day}-report.pdf"' in response["Content-Disposition"], "the file's name, the day"
    assert response["Cache-Control"] == "private, no-store"
    pages = pages_of(response.content)
    text = flat(pages)
    assert analysis.verdict in pages[0] and "Our interview.mp4" in text and analysis_id in text
    assert analysis.checkpoint_sha256 in text and analysis.sha256 in text and sha256_of(two_face_video) in text
    assert len(person_pages(pages)) == len(analysis.result["people"]) == 2
    assert str(settings.MEDIA_ROOT) not in text
    assert client.get(reverse("ml_app:analysis-report", args=[uuid.uuid4()])).status_code == 404


@pytest.mark.django_db
def test_a_failed_analysis_has_no_report_and_says_why(client, active_checkpoint, one_face_video, fresh_rates):
    from ml_app import jobs
    from ml_app.models import Analysis

    analysis_id = upload(client, one_face_video, HTTP_ACCEPT="application/json").json()["id"]
    Analysis.objects.filter(pk=analysis_id).update(status=Analysis.Status.RUNNING, attempts=1)
    jobs.fail(analysis_id, 1, "internal_error", "The worker fell over.")
    url = reverse("ml_app:analysis-report", args=[analysis_id])
    page = client.get(url)
    assert page.status_code == 409 and "This analysis failed (The worker fell over.)" in page.content.decode()
    as_json = client.get(url, HTTP_ACCEPT="application/json").json()
    assert as_json["error"]["code"] == "report_not_ready"


@pytest.mark.django_db(transaction=True)
def test_the_api_serves_the_report_to_its_owner_only(
    client, active_frame_checkpoint, tmp_path, django_user_model, fresh_rates
):
    from rest_framework.test import APIClient

    photo = media.photo(tmp_path / "portrait.jpg")
    alice, bob = APIClient(), APIClient()
    alice.force_authenticate(django_user_model.objects.create_user("alice"))
    bob.force_authenticate(django_user_model.objects.create_user("bob"))
    created = alice.post("/api/v1/analyses/", {"video": SimpleUploadedFile(photo.name, photo.read_bytes())})
    assert created.status_code == 202, created.content
    url = f"/api/v1/analyses/{created.json()['id']}/report.pdf"
    early = alice.get(url, HTTP_ACCEPT="application/pdf")
    assert early.status_code == 409 and early.json()["error"]["code"] == "report_not_ready"
    finish(created.json()["id"])
    mine = alice.get(url, HTTP_ACCEPT="application/pdf")
    assert mine.status_code == 200 and mine["Content-Type"] == "application/pdf"
    pages = pages_of(mine.content)
    assert "portrait.jpg" in flat(pages) and len(person_pages(pages)) == 1 and "The faces in the photo" in flat(pages)
    stranger = bob.get(url)
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "not_found"
    assert APIClient().get(url).status_code == 401
