"""Photos: the safe reader, every face of a photo scored by a frame model, a frame model scoring a video, the
``analyze_image`` command, and photo uploads through the site, the API and a real worker to a result."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from PIL import Image

from ml_app.detection.calibration import score_rule
from ml_app.detection.errors import ConfigurationError, EmptyImageFile, ImageTooLarge, ImageTooSmall, NotAnImage
from ml_app.detection.images import read_image
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.photo import analyze_image
from ml_app.detection.prediction import analyze_video
from ml_app.detection.preprocessing import crops_to_tensor
from ml_app.detection.scoring import fake_probabilities

from . import media

TWO_FACES = ((30, 60, 220), (420, 80, 220))


@pytest.fixture(scope="module")
def frame_model(frame_checkpoint):
    return load_detector_model(frame_checkpoint, "cpu")


def centre_x(box: list[int]) -> float:
    return (box[0] + box[2]) / 2


# --- reading a photo ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_the_exif_orientation_is_applied(tmp_path, orientation):
    upright, _ = read_image(media.photo(tmp_path / "upright.jpg"))
    turned, info = read_image(media.photo(tmp_path / f"turned{orientation}.jpg", orientation=orientation))
    assert turned.shape == upright.shape == (360, 480, 3)
    assert info.rotated and (info.width, info.height) == (480, 360)
    assert np.abs(turned.astype(int) - upright.astype(int)).mean() < 3, "the same picture once turned upright"


@pytest.mark.parametrize("suffix", [".png", ".webp", ".jpeg"])
def test_png_webp_and_jpeg_are_read(tmp_path, suffix):
    image, info = read_image(media.photo(tmp_path / f"face{suffix}"))
    assert image.shape == (360, 480, 3) and image.dtype == np.uint8
    assert info.format == {".png": "PNG", ".webp": "WEBP", ".jpeg": "JPEG"}[suffix] and not info.rotated


def test_a_decompression_bomb_is_refused_before_it_is_unpacked(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb)  # 400 megapixels in a few hundred kilobytes
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(ImageTooLarge, match=r"too large.*photos of up to 50 megapixels are accepted"):
        read_image(bomb)


def test_a_photo_over_the_pixel_limit_is_refused_with_its_size(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000)).save(big)
    with pytest.raises(ImageTooLarge, match=r"3000 x 2000 = 6 megapixels.*up to 5 megapixels"):
        read_image(big, max_pixels=5_000_000)
    assert read_image(big, max_pixels=6_000_000)[0].shape == (2000, 3000, 3)


def test_files_that_are_not_usable_photos_get_their_own_message(tmp_path):
    (tmp_path / "text.jpg").write_text("not a photo at all")
    (tmp_path / "empty.png").write_bytes(b"")
    good = media.photo(tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    Image.new("RGB", (20, 20)).save(tmp_path / "tiny.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "animated.gif")
    with pytest.raises(NotAnImage, match="only JPEG, PNG and WebP"):
        read_image(tmp_path / "text.jpg")
    with pytest.raises(EmptyImageFile, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(NotAnImage):
        read_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageTooSmall, match="20 x 20 pixels"):
        read_image(tmp_path / "tiny.png")
    with pytest.raises(NotAnImage, match="only JPEG, PNG and WebP"):
        read_image(tmp_path / "animated.gif")


# --- analysing a photo ----------------------------------------------------------------------------------------------


def test_every_face_of_a_photo_is_scored_by_the_frame_model(tmp_path, frame_model):
    path = media.photo(tmp_path / "two.jpg", width=720, height=360, faces=TWO_FACES)
    result = analyze_image(path, frame_model)
    [photo] = result.windows
    assert photo.status == "scored" and len(photo.tracks) == 2
    xs = sorted(centre_x(track.boxes[0]) for track in photo.tracks)
    assert 30 < xs[0] < 250 and 420 < xs[1] < 640, "each box lies on one of the portraits"
    assert [person.person_id for person in result.people] == [0, 1], "each face is its own person"
    assert result.video["kind"] == "image" and (result.video["width"], result.video["height"]) == (720, 360)
    assert result.sequence_length == 1
    # Each face's score is the network's on exactly the crop it was given (one frame, the checkpoint's class order).
    model, prep = frame_model.model, frame_model.checkpoint.preprocessing
    for track in photo.tracks:
        with torch.inference_mode():
            logits = model(crops_to_tensor(track.crops[None], prep))
        assert float(fake_probabilities(logits, prep.fake_index)[0]) == pytest.approx(track.raw_probability, abs=1e-5)
    assert result.fake_probability == max(track.fake_probability for track in photo.tracks)
    assert any("untrained" in warning for warning in result.warnings)


def test_a_photo_is_decided_by_the_video_rule(tmp_path, frame_model):
    path = media.photo(tmp_path / "one.jpg")
    score = analyze_image(path, frame_model).fake_probability
    fake = analyze_image(path, frame_model, rule=score_rule(None, fake=score - 0.01, real=score - 0.02))
    real = analyze_image(path, frame_model, rule=score_rule(None, fake=score + 0.02, real=score + 0.01))
    unsure = analyze_image(path, frame_model, rule=score_rule(None, fake=score + 0.01, real=score - 0.01))
    assert (fake.verdict, real.verdict, unsure.verdict) == ("FAKE", "REAL", "INCONCLUSIVE")
    assert fake.confidence == pytest.approx(score, abs=1e-6) and real.confidence == pytest.approx(1 - score, abs=1e-6)
    assert unsure.reason["code"] == "uncertain"


def test_boxes_of_a_turned_photo_are_where_the_upright_photo_has_its_face(tmp_path, frame_model):
    upright = analyze_image(media.photo(tmp_path / "upright.jpg"), frame_model)
    turned = analyze_image(media.photo(tmp_path / "turned.jpg", orientation=6), frame_model)
    assert turned.video["exif_rotated"] is True and (turned.video["width"], turned.video["height"]) == (480, 360)
    [a], [b] = upright.windows[0].tracks, turned.windows[0].tracks
    assert np.abs(np.array(a.boxes[0]) - np.array(b.boxes[0])).max() <= 6


def test_a_photo_without_a_face_is_inconclusive_and_says_why(tmp_path, frame_model):
    path = tmp_path / "wall.png"
    Image.fromarray(media.background(400, 300)).save(path)
    result = analyze_image(path, frame_model)
    assert result.verdict == "INCONCLUSIVE" and result.people == []
    assert (
        result.reason["code"] == "no_face"
        and "No face was found in the photo (400 x 300 pixels)" in (result.reason["message"])
    )


def test_a_sequence_model_does_not_score_photos(tmp_path, tiny_checkpoint):
    loaded = load_detector_model(tiny_checkpoint, "cpu")
    with pytest.raises(ConfigurationError, match="8-frame sequence model; photos are analysed by a frame model"):
        analyze_image(media.photo(tmp_path / "one.jpg"), loaded)


def test_a_frame_model_scores_a_video_by_the_mean_of_each_window_frames(one_face_video, frame_model):
    result = analyze_video(one_face_video, frame_model, max_windows=3, overlap_network=False)
    scored = [window for window in result.windows if window.status == "scored"]
    assert result.sequence_length == 10 and len(scored) == 3
    model, prep = frame_model.model, frame_model.checkpoint.preprocessing
    for window in scored:
        [track] = window.tracks
        assert len(track.boxes) == 10
        with torch.inference_mode():  # every frame on its own, then the mean
            per_frame = fake_probabilities(model(crops_to_tensor(track.crops[:, None], prep)), prep.fake_index)
        assert float(per_frame.mean()) == pytest.approx(track.raw_probability, abs=1e-5)


# --- the command line -----------------------------------------------------------------------------------------------


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("analyze_image", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_analyze_image_end_to_end(tmp_path, frame_checkpoint, site_dirs, settings):
    path = media.photo(tmp_path / "two.jpg", width=720, height=360, faces=TWO_FACES)
    data = json.loads(run_command(str(path), "--checkpoint", str(frame_checkpoint), "--json"))
    assert data["verdict"] in ("REAL", "FAKE", "INCONCLUSIVE") and len(data["windows"][0]["tracks"]) == 2
    assert data["checkpoint_choice"]["source"] == "option" and data["video"]["kind"] == "image"

    settings.MODEL_MAPPING = {1: str(frame_checkpoint)}  # without --checkpoint: the mapping's frame model
    summary = run_command(str(path), "--save-crops", str(tmp_path / "crops"))
    assert "photo: 720x360 JPEG" in summary and "frame model" in summary and "named in MODEL_MAPPING" in summary
    assert "face 1 at (" in summary and "face 2 at (" in summary
    assert (tmp_path / "crops" / "window00_face0_thumb.jpg").is_file()


@pytest.mark.django_db
def test_analyze_image_failures_have_their_exit_status(tmp_path, frame_checkpoint, tiny_checkpoint, site_dirs):
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(CommandError, match="not a photo this app can read") as bad_photo:
        run_command(str(tmp_path / "text.jpg"), "--checkpoint", str(frame_checkpoint))
    assert bad_photo.value.returncode == 3
    photo = media.photo(tmp_path / "one.jpg")
    with pytest.raises(CommandError, match="sequence model") as sequence_model:
        run_command(str(photo), "--checkpoint", str(tiny_checkpoint))
    assert sequence_model.value.returncode == 4
    with pytest.raises(CommandError, match="No checkpoint for 1-frame") as none:
        run_command(str(photo))
    assert none.value.returncode == 4


# --- the site, the API and the worker -------------------------------------------------------------------------------


@pytest.fixture
def fresh_rates():
    cache.clear()
    yield
    cache.clear()


def run_inline(analysis_id) -> None:
    from ml_app.tasks import analyze_video_task

    analyze_video_task.run(str(analysis_id), 1)


@pytest.mark.django_db
def test_a_photo_uploaded_on_the_site_gets_a_result_page(client, active_frame_checkpoint, tmp_path, fresh_rates):
    from ml_app.models import Analysis

    photo = media.photo(tmp_path / "Me at home.jpg", width=720, height=360, faces=TWO_FACES)
    response = client.post(reverse("ml_app:create"), {"video": SimpleUploadedFile(photo.name, photo.read_bytes())})
    assert response.status_code == 302, response.content
    analysis = Analysis.objects.get()
    assert analysis.media == "image" and analysis.sequence_length == 1
    assert analysis.checkpoint == active_frame_checkpoint and analysis.video_path.name == "photo.jpg"
    run_inline(analysis.pk)
    analysis.refresh_from_db()
    assert analysis.status == "done", analysis.error_message
    page = client.get(response["Location"]).content.decode()
    assert 'id="photo"' in page and 'id="photo-boxes"' in page and 'id="player"' not in page
    state = client.get(f"/analyses/{analysis.pk}/status").json()
    assert state["media"] == "image" and len(state["result"]["windows"][0]["tracks"]) == 2
    served = client.get(state["video_url"])
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert client.get(state["result"]["people"][0]["thumbnail_url"]).status_code == 200


@pytest.mark.django_db
def test_a_photo_through_the_api_to_a_result(active_frame_checkpoint, tmp_path, django_user_model, fresh_rates):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user("carol", password="carol-password-1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    photo = media.photo(tmp_path / "face.webp")
    created = api.post("/api/v1/analyses/", {"image": SimpleUploadedFile("face.webp", photo.read_bytes())})
    assert created.status_code == 202, created.content
    body = created.json()
    assert body["media"] == "image" and body["sequence_length"] == 1
    run_inline(body["id"])
    done = api.get(body["url"]).json()
    assert done["status"] == "done" and done["result"]["video"]["format"] == "WEBP"
    assert done["result"]["verdict"] in ("REAL", "FAKE", "INCONCLUSIVE") and len(done["result"]["people"]) == 1
    assert "Looked at the whole photo" in done["result"]["summary"]["coverage"], "a photo's summary speaks of photos"


@pytest.mark.django_db
def test_photo_uploads_that_cannot_be_analysed_are_refused_with_a_reason(
    client, active_checkpoint, frame_checkpoint, tmp_path, fresh_rates, settings
):
    from ml_app.models import Analysis, Checkpoint, RejectedUpload
    from ml_app.registry import register

    photo = media.photo(tmp_path / "one.png").read_bytes()

    def post(name: str, content: bytes, **extra: str):
        data = {"video": SimpleUploadedFile(name, content), **extra}
        return client.post(reverse("ml_app:create"), data, HTTP_ACCEPT="application/json")

    no_model = post("one.png", photo)
    assert no_model.status_code == 503 and no_model.json()["error"]["code"] == "no_photo_model"
    register(frame_checkpoint, Checkpoint.Source.MODELS_DIR)
    renamed = post("notes.jpg", b"these are my notes, not a photo")
    assert renamed.status_code == 400 and renamed.json()["error"]["code"] == "not_an_image"
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb)
    big = post("bomb.png", bomb.read_bytes())
    assert big.status_code == 413 and "too large" in big.json()["error"]["message"]
    with_ensemble = post("one.png", photo, ensemble="all-lengths")
    assert with_ensemble.status_code == 400 and with_ensemble.json()["error"]["code"] == "ensemble_for_photo"
    assert not Analysis.objects.exists()
    assert set(RejectedUpload.objects.values_list("code", flat=True)) == {
        "no_photo_model",
        "not_an_image",
        "image_too_large",
        "ensemble_for_photo",
    }
    assert not list((Path(settings.MEDIA_ROOT) / "incoming").glob("*")), "no refused photo is left on disk"


@pytest.mark.django_db(transaction=True)
def test_a_photo_through_a_real_worker(client, active_frame_checkpoint, tmp_path, fresh_rates):
    from ml_app.models import Analysis

    from .workers import make_broker, running_worker, use_broker, wait_for

    broker = make_broker("filesystem", tmp_path)
    photo = media.photo(tmp_path / "face.png")
    with use_broker(broker), running_worker(broker, tmp_path / "worker.log") as worker:
        response = client.post(
            reverse("ml_app:create"),
            {"video": SimpleUploadedFile("face.png", photo.read_bytes())},
            HTTP_ACCEPT="application/json",
        )
        assert response.status_code == 202, response.content
        analysis = Analysis.objects.get(pk=response.json()["id"])

        def finished() -> bool:
            analysis.refresh_from_db()
            return analysis.is_finished

        wait_for(finished, 120, what="the photo's analysis")
        assert analysis.status == "done", analysis.error_message + worker.log()[-2000:]
        assert analysis.result["video"]["kind"] == "image" and analysis.result["windows_scored"] == 1
        assert (analysis.crops_dir / "person0.jpg").is_file()


@pytest.mark.django_db
def test_the_upload_page_offers_photos_only_with_an_active_frame_model(client, active_checkpoint, frame_checkpoint):
    from ml_app.models import Checkpoint
    from ml_app.registry import register

    page = client.get("/").content.decode()
    assert 'data-image-extensions=""' in page and "or a photo" not in page
    register(frame_checkpoint, Checkpoint.Source.MODELS_DIR)
    page = client.get("/").content.decode()
    assert 'data-image-extensions="jpg,jpeg,png,webp"' in page and "Drop a video or a photo here" in page
    assert "Frame by frame" in page and ".webp" in page.split('accept="')[1].split('"')[0]


def test_a_truncated_photo_is_refused_even_after_face_recognition_is_imported(tmp_path):
    import face_recognition  # noqa: F401 - importing it turns on Pillow's LOAD_TRUNCATED_IMAGES
    from PIL import ImageFile

    good = media.photo(tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as face_recognition leaves it
    with pytest.raises(NotAnImage, match="damaged"):
        read_image(tmp_path / "cut.jpg")


def test_inspecting_a_photo_reads_its_headers_only(tmp_path):
    from ml_app.detection.images import inspect_image

    turned = inspect_image(media.photo(tmp_path / "turned.jpg", orientation=6))
    assert (turned.width, turned.height, turned.rotated, turned.format) == (480, 360, True, "JPEG")
    good = media.photo(tmp_path / "good.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 3])
    assert inspect_image(tmp_path / "cut.jpg").width == 480, "the headers are intact: nothing is decoded"
    with pytest.raises(NotAnImage, match="damaged"):
        read_image(tmp_path / "cut.jpg")


@pytest.mark.django_db
def test_a_photo_whose_pixels_do_not_decode_fails_in_the_worker_with_its_reason(
    client, active_frame_checkpoint, tmp_path, fresh_rates
):
    from ml_app.models import Analysis

    good = media.photo(tmp_path / "good.jpg").read_bytes()
    response = client.post(
        reverse("ml_app:create"),
        {"video": SimpleUploadedFile("cut.jpg", good[: len(good) // 3])},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 202, "the headers pass the request's checks"
    analysis = Analysis.objects.get(pk=response.json()["id"])
    run_inline(analysis.pk)
    analysis.refresh_from_db()
    assert analysis.status == "failed" and analysis.error_code == "not_an_image"
    assert "is damaged: its pixels do not decode" in analysis.error_message
