"""Heat maps (Grad-CAM after the verdict): their shape and range, that they follow the input, for sequence and frame
models and every backbone; which windows get one (off / flagged / all); ONNX checkpoints say why they have none;
``--save-crops`` writes them; the result page shows them with what they mean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from django.core.management import call_command

from ml_app.detection.calibration import score_rule
from ml_app.detection.checkpoints import new_checkpoint
from ml_app.detection.errors import ConfigurationError
from ml_app.detection.faces import build_detector
from ml_app.detection.heatmaps import HEATMAP_MODES, add_heatmaps, compute_heatmap, parse_mode, select_tracks
from ml_app.detection.model_loading import LoadedModel, load_detector_model
from ml_app.detection.network import BACKBONE_NAMES, DeepfakeDetector, ModelConfig
from ml_app.detection.prediction import analyze_video
from ml_app.detection.preprocessing import Preprocessing
from ml_app.detection.results import AnalysisResult, PersonResult, TrackScore, WindowResult

from . import media
from .conftest import REPO

SIZE = 64  # the crops of the tests' small checkpoints


def crops(frames: int, seed: int) -> np.ndarray:
    """``frames`` face crops as a TrackScore keeps them: the portrait, shifted and noisy frame by frame."""
    rng = np.random.default_rng(seed)
    face = media.portrait(SIZE).astype(np.int16)
    shifted = [np.roll(face, shift=(seed * 3 + n) % 9, axis=1) for n in range(frames)]
    noisy = [frame + rng.integers(-25, 25, frame.shape) for frame in shifted]
    return np.clip(np.stack(noisy), 0, 255).astype(np.uint8)


def fresh_model(config: ModelConfig, sequence_length: int, seed: int = 0) -> LoadedModel:
    """A network of ``config`` on 64-pixel crops, initialised from ``seed``, loaded as a checkpoint would be."""
    prep = Preprocessing(image_size=SIZE)
    torch.manual_seed(seed)
    model = DeepfakeDetector(config, pretrained="random").eval()
    checkpoint = new_checkpoint(config, prep, sequence_length, model=model)
    return LoadedModel(checkpoint, model, build_detector(prep.detector), model.classifier.weight.device)


def every_feature_says_fake(loaded: LoadedModel) -> LoadedModel:
    """A frame model whose classifier counts every pooled feature (all >= 0, after a ReLU) as evidence for FAKE: its
    map is positive wherever the last block is active, whatever the random trunk. A random classifier may instead
    argue against FAKE in every cell of a 2 x 2 map, and then the map is rightly all zeros."""
    classifier = loaded.model.classifier
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.zero_()
        classifier.weight[loaded.checkpoint.preprocessing.fake_index] = 0.01
    return loaded


@pytest.fixture(scope="module")
def sequence_model(tiny_checkpoint) -> LoadedModel:
    """The tests' small checkpoint (random weights, new each session), for what does not depend on its weights."""
    return load_detector_model(tiny_checkpoint, "cpu")


@pytest.fixture(scope="module")
def seeded_sequence_model() -> LoadedModel:
    """MobileNetV2 + LSTM from a fixed seed: the same weights every run, with positive evidence in these crops."""
    return fresh_model(ModelConfig(backbone="mobilenet_v2", hidden_size=16), 8)


@pytest.fixture(scope="module")
def frame_model() -> LoadedModel:
    return every_feature_says_fake(fresh_model(ModelConfig(backbone="mobilenet_v2", head="frame"), 1))


def assert_a_map_of_the_crop(heatmap, sequence: np.ndarray) -> None:
    assert heatmap.map.shape == sequence.shape[1:3] and heatmap.map.dtype == np.float32
    assert np.isfinite(heatmap.map).all() and heatmap.map.min() >= 0.0 and heatmap.map.max() <= 1.0
    assert heatmap.map.max() == pytest.approx(1.0), "the map is stretched to its peak"
    assert 0 <= heatmap.frame < len(sequence)
    assert heatmap.overlay.shape == sequence.shape[1:] and heatmap.overlay.dtype == np.uint8
    assert not np.array_equal(heatmap.overlay, sequence[heatmap.frame]), "the map is drawn over the crop"


# --- the map itself -------------------------------------------------------------------------------------------------


def test_a_sequence_model_map_has_the_crops_size_and_follows_the_input(seeded_sequence_model):
    one, other = crops(8, seed=1), crops(8, seed=2)
    first, again, second = (compute_heatmap(seeded_sequence_model, c) for c in (one, one, other))
    for heatmap in (first, second):
        assert_a_map_of_the_crop(heatmap, one)
    np.testing.assert_array_equal(first.map, again.map)  # the same crops give the same map
    assert np.abs(first.map - second.map).mean() > 0.01, "other crops give another map"


@pytest.mark.parametrize("frames", [1, 3])
def test_a_frame_model_map_has_the_crops_size_and_follows_the_input(frame_model, frames):
    first, second = compute_heatmap(frame_model, crops(frames, 1)), compute_heatmap(frame_model, crops(frames, 2))
    assert_a_map_of_the_crop(first, crops(frames, 1))
    assert np.abs(first.map - second.map).mean() > 0.01


def test_the_frame_mapped_is_chosen_by_what_it_shows_not_where_it_stands(frame_model):
    """A frame model scores a window by the mean of its frames, whatever their order: reversed frames must give
    the same map, of the same frame, now at the other end."""
    sequence = crops(5, seed=6)
    forward, backward = compute_heatmap(frame_model, sequence), compute_heatmap(frame_model, sequence[::-1].copy())
    assert backward.frame == len(sequence) - 1 - forward.frame
    np.testing.assert_allclose(backward.map, forward.map, atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_every_backbone_names_a_layer_that_gives_a_map(backbone):
    loaded = every_feature_says_fake(fresh_model(ModelConfig(backbone=backbone, head="frame"), 1))
    assert_a_map_of_the_crop(compute_heatmap(loaded, crops(2, 4)), crops(2, 4))


def test_the_original_apps_head_maps_the_last_frame_the_only_one_it_sees():
    loaded = fresh_model(ModelConfig(backbone="mobilenet_v2", hidden_size=16, head="legacy_last_frame"), 4)
    heatmap = compute_heatmap(loaded, crops(4, 5))
    assert heatmap.frame == 3
    assert_a_map_of_the_crop(heatmap, crops(4, 5))


def test_crops_of_the_wrong_shape_are_refused(sequence_model):
    with pytest.raises(ValueError, match=r"expected \(N, 64, 64, 3\) uint8 crops"):
        compute_heatmap(sequence_model, np.zeros((8, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        compute_heatmap(sequence_model, crops(8, 1).astype(np.float32))


# --- which windows, when ---------------------------------------------------------------------------------------------


def _result(verdicts: list[str]) -> AnalysisResult:
    """A result whose person i (verdict ``verdicts[i]``) is the one face of scored window i, plus a faceless window."""
    result = AnalysisResult(verdict="INCONCLUSIVE", sequence_length=8, video={}, checkpoint={"sha256": "x"})
    for person, verdict in enumerate(verdicts):
        window = WindowResult(person, person * 8, person * 8 + 7, 0.0, 0.3, 8, "scored", 1)
        window.tracks.append(TrackScore(0, person, 0.5, [[0, 0, 1, 1]] * 8, 0, crops=crops(8, person)))
        result.windows.append(window)
        result.people.append(PersonResult(person, [person], 0.5, verdict))  # type: ignore[arg-type]
    result.windows.append(WindowResult(len(verdicts), 99, 106, 4.0, 4.3, 8, "no_face", 0))
    return result


def test_the_mode_selects_the_windows():
    result = _result(["FAKE", "REAL", "INCONCLUSIVE", "REAL"])
    chosen = {mode: [window.index for window, _ in select_tracks(result, mode)] for mode in HEATMAP_MODES}
    assert chosen == {"off": [], "flagged": [0, 2], "all": [0, 1, 2, 3]}


def test_modes_are_read_in_any_case_and_others_refused():
    assert parse_mode(" Flagged ") == "flagged" and parse_mode("ALL") == "all"
    with pytest.raises(ConfigurationError, match="'sometimes' is not a heat-map mode: choose off, flagged, all"):
        parse_mode("sometimes")


def test_a_bad_setting_stops_the_site_from_starting():
    env = {**os.environ, "DETECTION_HEATMAPS": "everything"}
    done = subprocess.run(
        [sys.executable, "-c", "import project_settings.settings"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "DETECTION_HEATMAPS: 'everything' is not a heat-map mode" in done.stderr


@pytest.mark.parametrize(("verdict", "mapped"), [("FAKE", True), ("REAL", False)])
def test_after_the_verdict_flagged_people_get_maps_with_their_time(one_face_video, sequence_model, verdict, mapped):
    score = analyze_video(one_face_video, sequence_model, max_windows=2).fake_probability
    fake, real = (score - 0.01, score - 0.02) if verdict == "FAKE" else (score + 0.02, score + 0.01)
    result = analyze_video(one_face_video, sequence_model, max_windows=2, rule=score_rule(None, fake, real))
    assert result.verdict == verdict
    total = result.timings["total"]
    add_heatmaps(result, [sequence_model], "flagged")
    tracks = [track for window in result.windows for track in window.tracks]
    assert tracks and all((track.heatmap is not None) is mapped for track in tracks)
    described = result.to_dict()["heatmaps"]
    assert described["mode"] == "flagged" and described["method"] == "Grad-CAM" and described["note"] is None
    assert described["layer"] == "mobilenet_v2 backbone.18"
    assert len(described["maps"]) == (len(tracks) if mapped else 0)
    if mapped:
        spent = result.timings["heatmaps"]
        assert spent > 0 and result.timings["total"] == pytest.approx(total + spent), "a stage of its own, in the total"
        first = described["maps"][0]
        assert first["video_frame"] == result.windows[0].start_frame + first["frame"]
    else:
        assert "heatmaps" not in result.timings, "nothing was computed"


def test_an_onnx_checkpoint_says_heat_maps_need_the_pt(one_face_video, tiny_checkpoint, tmp_path):
    onnx_file = tmp_path / "tiny.onnx"
    call_command("export_onnx", str(tiny_checkpoint), "--output", str(onnx_file), stdout=StringIO())
    loaded = load_detector_model(onnx_file, "cpu")
    result = analyze_video(one_face_video, loaded, max_windows=2)
    add_heatmaps(result, [loaded], "all")
    described = result.to_dict()["heatmaps"]
    assert described["maps"] == [] and "Heat maps need the .pt checkpoint" in described["note"]
    assert "tiny.onnx" in described["note"]
    with pytest.raises(ConfigurationError, match=r"need the \.pt checkpoint"):
        compute_heatmap(loaded, crops(8, 1))


def test_without_crops_there_is_no_map_and_the_result_says_why(one_face_video, sequence_model):
    result = analyze_video(one_face_video, sequence_model, max_windows=2, keep_crops=False)
    add_heatmaps(result, [sequence_model], "all")
    assert result.heatmap_list() == [] and "face crops were not kept" in result.heatmaps["note"]


# --- the command line ------------------------------------------------------------------------------------------------


def test_analyze_video_save_crops_writes_the_heat_maps(one_face_video, tiny_checkpoint, tmp_path):
    out = StringIO()
    folder = tmp_path / "crops"
    call_command(
        "analyze_video", str(one_face_video), "--checkpoint", str(tiny_checkpoint), "--max-windows", "2",
        "--heatmaps", "all", "--save-crops", str(folder), "--json", stdout=out,
    )  # fmt: skip
    result = json.loads(out.getvalue())
    maps = result["heatmaps"]["maps"]
    assert len(maps) == result["windows_scored"] == 2 and result["timings"]["heatmaps"] > 0
    for entry in maps:
        names = result["crop_files"]["windows"][str(entry["window"])][str(entry["track_id"])]
        overlay = cv2.imread(str(folder / names["heatmap"]))
        crop = cv2.imread(str(folder / names["heatmap_crop"]))
        assert names["heatmap"].endswith("_heatmap.png") and overlay.shape == crop.shape == (SIZE, SIZE, 3)


def test_analyze_video_makes_no_maps_unless_asked(one_face_video, tiny_checkpoint, tmp_path, settings):
    base = ["analyze_video", str(one_face_video), "--checkpoint", str(tiny_checkpoint), "--max-windows", "1", "--json"]
    out = StringIO()
    call_command(*base, stdout=out)
    plain = json.loads(out.getvalue())
    assert plain["heatmaps"]["mode"] == "off" and "heatmaps" not in plain["timings"]
    settings.DETECTION_HEATMAPS = "off"
    out = StringIO()
    call_command(*base, "--save-crops", str(tmp_path), stdout=out)
    assert json.loads(out.getvalue())["heatmaps"]["maps"] == [] and not list(tmp_path.glob("*_heatmap*"))


def test_analyze_image_summary_reports_its_heat_maps(frame_checkpoint, tmp_path):
    out = StringIO()
    photo = media.photo(tmp_path / "face.jpg")
    call_command(
        "analyze_image", str(photo), "--checkpoint", str(frame_checkpoint), "--heatmaps", "all",
        "--save-crops", str(tmp_path / "crops"), stdout=out,
    )  # fmt: skip
    assert "heat maps (Grad-CAM, all): 1 made; written beside the crops" in out.getvalue()
    assert "heatmaps " in out.getvalue().split("time:")[1], "its time is on the time line"
    assert len(list((tmp_path / "crops").glob("*_heatmap.png"))) == 1


# --- the result page ------------------------------------------------------------------------------------------------


@pytest.fixture
def analysed(client, active_checkpoint, one_face_video, settings):
    """An upload analysed as the worker would, with heat maps for every window."""
    from django.core.cache import cache

    from ml_app.models import Analysis
    from ml_app.tasks import analyze_video_task

    from .test_site import upload

    cache.clear()  # upload rates
    settings.DETECTION_HEATMAPS = "all"
    analysis = Analysis.objects.get(pk=upload(client, one_face_video).json()["id"])
    queued = client.get(f"/analyses/{analysis.pk}/").content.decode()
    assert 'data-server-sections-pending="true"' in queued and 'id="heatmaps"' not in queued
    analyze_video_task.run(str(analysis.pk), 1)
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    return analysis


@pytest.mark.django_db(transaction=True)  # the job's heartbeat thread writes to the database too
def test_the_result_page_shows_each_heat_map_beside_its_crop_and_what_it_means(client, analysed):
    html = client.get(f"/analyses/{analysed.pk}/").content.decode()
    assert 'data-server-sections-pending="false"' in html and 'id="heatmaps"' in html
    assert "moved the network's" in html and "It is not a map of “the fake part”" in html and "not proof" in html
    maps = analysed.result["heatmaps"]["maps"]
    assert len(maps) == analysed.result["windows_scored"] == 4 and analysed.result["timings"]["heatmaps"] > 0
    overlays = [url for url in _image_urls(html) if url.endswith("_heatmap.png")]
    crops_alone = [url for url in _image_urls(html) if url.endswith("_heatmap_crop.jpg")]
    assert len(overlays) == len(crops_alone) == 4
    for url in overlays:
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        image = cv2.imdecode(np.frombuffer(b"".join(response.streaming_content), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (SIZE, SIZE, 3)
    assert "Person 1 ·\n            window #0" in html and "video frame" in html, "each map under its person"
    assert "crop_files" not in html, "the page names files by URL only"


@pytest.mark.django_db(transaction=True)  # the job's heartbeat thread writes to the database too
def test_the_result_page_has_no_heat_maps_when_they_are_off(client, active_checkpoint, one_face_video, settings):
    from ml_app.tasks import analyze_video_task

    from .test_site import upload

    settings.DETECTION_HEATMAPS = "off"
    analysis_id = upload(client, one_face_video).json()["id"]
    analyze_video_task.run(analysis_id, 1)
    html = client.get(f"/analyses/{analysis_id}/").content.decode()
    assert 'id="heatmaps-slot"' in html and 'id="heatmaps"' not in html
    assert client.get(f"/analyses/{analysis_id}/crops/window00_face0_heatmap.png").status_code == 404
    assert client.get(f"/analyses/{analysis_id}/crops/..%2Fvideo.png").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_photos_page_shows_a_heat_map_per_face(client, active_frame_checkpoint, tmp_path, settings):
    from django.core.cache import cache
    from django.core.files.uploadedfile import SimpleUploadedFile

    from ml_app.models import Analysis
    from ml_app.tasks import analyze_video_task

    cache.clear()  # upload rates
    settings.DETECTION_HEATMAPS = "all"
    photo = media.photo(tmp_path / "face.jpg")
    client.post("/analyses/", {"video": SimpleUploadedFile(photo.name, photo.read_bytes())})
    analysis = Analysis.objects.get()
    analyze_video_task.run(str(analysis.pk), 1)
    html = client.get(f"/analyses/{analysis.pk}/").content.decode()
    assert 'id="heatmaps"' in html and "Face 1 · fake probability" in html and "Window #" not in html
    assert len([url for url in _image_urls(html) if url.endswith("_heatmap.png")]) == 1


def _image_urls(html: str) -> list[str]:
    import re

    return re.findall(r'<img src="([^"]+)"', html)


def test_the_overlay_png_written_is_the_one_on_the_track(sequence_model, tmp_path):
    result = _result(["FAKE"])
    add_heatmaps(result, [sequence_model], "flagged")
    files = result.save_crops(tmp_path)
    track = result.windows[0].tracks[0]
    names = files["windows"]["0"]["0"]
    written = cv2.cvtColor(cv2.imread(str(tmp_path / names["heatmap"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(written, track.heatmap.overlay)  # PNG: lossless
    assert Path(tmp_path / names["heatmap_crop"]).is_file()
