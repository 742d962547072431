"""``manage.py analyze_video`` end to end: verdicts with their evidence, inconclusive outcomes, and failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ml_app.detection.files import file_sha256
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video

from . import media
from .conftest import REPO, small_checkpoint


def run_json(*args) -> dict:
    from io import StringIO

    out = StringIO()
    call_command("analyze_video", *map(str, args), "--json", stdout=out)
    return json.loads(out.getvalue())


def manage(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "manage.py", *map(str, args)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
    )


def test_one_face_video_gets_a_verdict_with_its_evidence(one_face_video, tiny_checkpoint, tmp_path):
    result = run_json(one_face_video, "--checkpoint", tiny_checkpoint, "--save-crops", tmp_path / "crops")
    assert result["verdict"] in ("REAL", "FAKE")
    assert 0.0 <= result["fake_probability"] <= 1.0
    expected_confidence = result["fake_probability"] if result["verdict"] == "FAKE" else 1 - result["fake_probability"]
    assert result["confidence"] == pytest.approx(expected_confidence, abs=1e-6)
    windows = result["windows"]
    assert len(windows) == 6, "48 frames hold six 8-frame windows"
    assert windows[0]["start_frame"] == 0 and windows[-1]["end_frame"] == 47, "the windows cover the whole video"
    assert all(w["status"] == "scored" and len(w["tracks"]) == 1 for w in windows)
    assert all(w["end_time"] > w["start_time"] for w in windows)
    assert all(len(w["tracks"][0]["boxes"]) == 8 for w in windows)
    assert len(result["people"]) == 1 and result["people"][0]["windows"] == list(range(6))
    assert result["checkpoint"]["sha256"] == file_sha256(tiny_checkpoint)
    assert result["checkpoint"]["untrained"] is True
    assert any("untrained" in warning for warning in result["warnings"])
    assert {"probe", "decode", "detect", "crop", "network", "total", "checkpoint_load"} <= set(result["timings"])
    assert result["video"]["frame_count"] == 48 and result["video"]["width"] == 480
    crops = tmp_path / "crops"
    files = result["crop_files"]["windows"]["0"]["0"]
    assert (crops / files["strip"]).is_file() and (crops / files["thumb"]).is_file()
    assert (crops / "person0.jpg").is_file()


def test_two_faces_give_two_tracks_and_two_people(two_face_video, tiny_checkpoint):
    result = run_json(two_face_video, "--checkpoint", tiny_checkpoint, "--max-windows", "3")
    assert len(result["windows"]) == 3
    assert all(len(w["tracks"]) == 2 for w in result["windows"])
    for window in result["windows"]:
        ids = [track["person_id"] for track in window["tracks"]]
        assert len(set(ids)) == 2, "two faces in one window are never the same person"
    assert sorted(len(p["windows"]) for p in result["people"]) == [3, 3]


def test_batch_size_does_not_change_the_scores(one_face_video, tiny_checkpoint):
    loaded = load_detector_model(tiny_checkpoint, "cpu")
    one = analyze_video(one_face_video, loaded, batch_size=1)
    many = analyze_video(one_face_video, loaded, batch_size=6)
    scores_one = [t.fake_probability for w in one.windows for t in w.tracks]
    scores_many = [t.fake_probability for w in many.windows for t in w.tracks]
    assert scores_one == pytest.approx(scores_many, abs=1e-5)


def test_video_without_faces_is_inconclusive(faceless_video, tiny_checkpoint):
    result = run_json(faceless_video, "--checkpoint", tiny_checkpoint)
    assert result["verdict"] == "INCONCLUSIVE"
    assert result["reason"]["code"] == "no_face"
    assert result["fake_probability"] is None
    assert all(w["status"] == "no_face" for w in result["windows"])
    assert all(len(w["frames_without_face"]) == 8 for w in result["windows"])


def test_video_shorter_than_a_window_is_inconclusive(tiny_checkpoint, tmp_path):
    short = media.face_video(tmp_path / "short.mp4", frames=5)
    result = run_json(short, "--checkpoint", tiny_checkpoint)
    assert result["verdict"] == "INCONCLUSIVE"
    assert result["reason"]["code"] == "too_few_frames"
    assert "5 frames" in result["reason"]["message"]


def test_face_never_visible_for_a_whole_window_is_inconclusive(tiny_checkpoint, tmp_path):
    # Visible for 3 frames in every 9: gaps are filled only up to 4 frames, and a face must be seen in half the window.
    images = [
        media.scene(480, 360, [(140, 60, 200)], n) if n % 9 < 3 else media.background(480, 360) for n in range(36)
    ]
    flicker = media.write_video(tmp_path / "flicker.mp4", images)
    result = run_json(flicker, "--checkpoint", tiny_checkpoint)
    assert result["verdict"] == "INCONCLUSIVE"
    assert result["reason"]["code"] == "face_not_tracked"


def test_readable_summary(one_face_video, tiny_checkpoint):
    from io import StringIO

    out = StringIO()
    call_command("analyze_video", str(one_face_video), "--checkpoint", str(tiny_checkpoint), stdout=out)
    text = out.getvalue()
    assert text.splitlines()[0].startswith("one_face.mp4: ")
    assert "fake probability" in text and "person 1:" in text and "untrained" in text
    assert "decode" in text and "network" in text


def test_sequence_length_must_match_the_checkpoint(one_face_video, tiny_checkpoint):
    with pytest.raises(CommandError, match="does not match"):
        call_command(
            "analyze_video", str(one_face_video), "--checkpoint", str(tiny_checkpoint), "--sequence-length", "20"
        )


# --- the real command line: exit status and one-line reasons --------------------------------------------------------


def test_cli_success_exits_zero(one_face_video, tiny_checkpoint):
    process = manage("analyze_video", one_face_video, "--checkpoint", tiny_checkpoint, "--json")
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout)["verdict"] in ("REAL", "FAKE")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"just some text\n" * 10, "text file"), (b"<html><body>404</body></html>", "HTML page")],
)
def test_cli_bad_video_exits_3_with_one_line(tmp_path, tiny_checkpoint, content, message):
    path = tmp_path / "upload.mp4"
    path.write_bytes(content)
    process = manage("analyze_video", path, "--checkpoint", tiny_checkpoint)
    assert process.returncode == 3
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_cli_audio_only_and_truncated(tmp_path, tiny_checkpoint, one_face_video):
    audio = media.write_audio_only(tmp_path / "talk.mp4")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(one_face_video.read_bytes()[:20000])
    for path, message in ((audio, "no video stream"), (truncated, "truncated")):
        process = manage("analyze_video", path, "--checkpoint", tiny_checkpoint)
        assert process.returncode == 3 and message in process.stderr


def test_cli_without_a_checkpoint_says_how_to_get_one(one_face_video, tmp_path):
    process = manage(
        "analyze_video",
        one_face_video,
        "--sequence-length",
        "40",
        env={"MODELS_DIR": str(tmp_path), "MODEL_MAPPING": "", "STATE_DIR": str(tmp_path / "state")},
    )
    assert process.returncode == 4
    assert "No checkpoint for 40-frame sequences" in process.stderr
    assert "create_checkpoint --sequence-length 40" in process.stderr and "import_checkpoint" in process.stderr


def test_cli_finds_the_checkpoint_for_the_length_in_the_models_folder(one_face_video, tmp_path):
    """No database at all (a fresh clone before migrate): the models folder decides, and the command says so."""
    small_checkpoint(tmp_path / "mine.pt", sequence_length=12)
    state = tmp_path / "state"
    process = manage(
        "analyze_video",
        one_face_video,
        "--sequence-length",
        "12",
        "--json",
        env={"MODELS_DIR": str(tmp_path), "STATE_DIR": str(state), "DATABASE_URL": f"sqlite:///{state}/db.sqlite3"},
    )
    assert process.returncode == 0, process.stderr
    result = json.loads(process.stdout)
    assert result["sequence_length"] == 12 and result["checkpoint"]["name"] == "mine"
    choice = result["checkpoint_choice"]
    assert choice["source"] == "models_dir" and choice["path"] == str(tmp_path / "mine.pt")
    assert choice["reason"].startswith(f"best checkpoint for 12 frames in {tmp_path}/ (the only one)")
    assert choice["reason"].endswith("; no database yet, so no registry (manage.py migrate makes one)")
    assert not (state / "db.sqlite3").exists(), "looking for a registry creates no database"


def test_cli_with_an_unmigrated_database_uses_model_mapping(one_face_video, tmp_path):
    mine = small_checkpoint(tmp_path / "mapped.pt", sequence_length=12)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "db.sqlite3").write_bytes(b"")  # a database without the registry's table
    process = manage(
        "analyze_video",
        one_face_video,
        "--sequence-length",
        "12",
        "--max-windows",
        "1",
        env={
            "MODELS_DIR": str(tmp_path / "none"),
            "STATE_DIR": str(tmp_path / "state"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'state' / 'db.sqlite3'}",
            "MODEL_MAPPING": json.dumps({"12": str(mine)}),
        },
    )
    assert process.returncode == 0, process.stderr
    expected = "checkpoint chosen: named in MODEL_MAPPING for 12 frames; the database has no checkpoint registry"
    assert expected in process.stdout
    assert str(mine) in process.stdout


def _trained(path: Path, accuracy: float) -> Path:
    """Mark a small checkpoint as trained with a reported accuracy: the folder's preference order favours it."""
    import torch

    payload = torch.load(path, weights_only=True)
    payload["metrics"], payload["training"] = {"accuracy": accuracy}, {"epochs": 1}
    torch.save(payload, path)
    return path


@pytest.mark.django_db
def test_the_registry_active_checkpoint_decides_like_on_the_site(one_face_video, site_dirs, settings):
    from io import StringIO

    from ml_app.checkpoint_lookup import choose_checkpoint
    from ml_app.models import Checkpoint
    from ml_app.registry import activate_checkpoint, active_checkpoints, register

    preferred = _trained(small_checkpoint(settings.MODELS_DIR / "preferred.pt", sequence_length=10), 0.9)
    plain = small_checkpoint(settings.MODELS_DIR / "plain.pt", sequence_length=10)  # untrained: never preferred
    first = register(preferred, Checkpoint.Source.MODELS_DIR)
    chosen = register(plain, Checkpoint.Source.MODELS_DIR)
    assert first.is_active and not chosen.is_active
    activate_checkpoint(chosen)  # an administrator's choice, against the folder's preference order
    result = run_json(one_face_video, "--sequence-length", "10", "--max-windows", "1")
    assert result["checkpoint"]["sha256"] == chosen.sha256 == active_checkpoints()[10].sha256, "as the site would"
    assert result["checkpoint_choice"]["source"] == "registry"
    assert result["checkpoint_choice"]["reason"] == "active in the registry for 10 frames"
    assert result["checkpoint_choice"]["path"] == str(plain)
    out = StringIO()
    call_command("analyze_video", str(one_face_video), "--sequence-length", "10", "--max-windows", "1", stdout=out)
    assert f"checkpoint chosen: active in the registry for 10 frames ({plain})" in out.getvalue()
    Checkpoint.objects.update(is_active=False)  # nothing active for 10 frames: the folder decides, by preference
    fallback = choose_checkpoint(10)
    assert fallback.path == preferred and fallback.source == "models_dir"
    assert "nothing active for 10 frames in the registry" in fallback.reason


def test_checkpoint_option_is_reported(one_face_video, tiny_checkpoint):
    result = run_json(one_face_video, "--checkpoint", tiny_checkpoint, "--max-windows", "1")
    assert result["checkpoint_choice"] == {
        "path": str(tiny_checkpoint),
        "source": "option",
        "reason": "given with --checkpoint",
    }


def test_cli_broken_checkpoint_exits_4(one_face_video, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("<!doctype html><title>Sign in</title>")
    process = manage("analyze_video", one_face_video, "--checkpoint", bad)
    assert process.returncode == 4 and "HTML page" in process.stderr


def test_cli_missing_video(tiny_checkpoint):
    process = manage("analyze_video", Path("no/such/video.mp4"), "--checkpoint", tiny_checkpoint)
    assert process.returncode == 3 and "does not exist" in process.stderr


def test_a_batch_of_two_videos_gives_each_the_same_output_as_alone(one_face_video, two_face_video, tiny_checkpoint):
    """Face sequences from two different videos scored in one batch score as they do alone."""
    import numpy as np
    import torch

    from ml_app.detection.preprocessing import crops_to_tensor

    loaded = load_detector_model(tiny_checkpoint, "cpu")
    first = analyze_video(one_face_video, loaded, max_windows=1).windows[0].tracks[0]
    second = analyze_video(two_face_video, loaded, max_windows=1).windows[0].tracks[0]
    prep = loaded.checkpoint.preprocessing
    clips = crops_to_tensor(np.stack([first.crops, second.crops]), prep)
    with torch.inference_mode():
        together = torch.softmax(loaded.model(clips), dim=1)[:, prep.fake_index]
    assert together.tolist() == pytest.approx([first.fake_probability, second.fake_probability], abs=1e-5)


def test_decoding_ahead_and_scoring_aside_do_not_change_the_result(two_face_video, tiny_checkpoint):
    loaded = load_detector_model(tiny_checkpoint, "cpu")
    results = [
        analyze_video(two_face_video, loaded, overlap_decoding=decoding, overlap_network=network).to_dict()
        for decoding, network in ((False, False), (True, False), (True, True))
    ]
    timings = [result.pop("timings") for result in results]
    assert results[0] == results[1] == results[2]
    assert "decode_wait" not in timings[0] and "decode_wait" in timings[1]
    assert all({"probe", "decode", "detect", "crop", "network", "total"} <= set(t) for t in timings)


def test_each_window_frame_is_converted_once_and_cropped_where_it_lies(one_face_video, tiny_checkpoint, monkeypatch):
    """The pixels the detector searches and the crops are cut from are the arrays the reader converted: no frame is
    converted twice, copied on the way, or converted at all outside the windows."""
    from ml_app.detection import video, windows

    converted: dict[int, object] = {}  # id -> the array itself, kept so that no later array can reuse its id
    original_convert = video.convert_frame

    def counting_convert(frame, reformatter, rotation):
        image = original_convert(frame, reformatter, rotation)
        converted[id(image)] = image
        return image

    seen: dict[str, list[int]] = {"detect": [], "crop": []}
    original_crop = windows.crop_face

    def recording_crop(image, box, prep):
        seen["crop"].append(id(image))
        return original_crop(image, box, prep)

    loaded = load_detector_model(tiny_checkpoint, "cpu")
    detector = loaded.detector
    original_detect, original_near = detector.detect, detector.detect_near

    def detect(image, *args, **kwargs):
        seen["detect"].append(id(image))
        return original_detect(image, *args, **kwargs)

    def detect_near(image, *args, **kwargs):
        seen["detect"].append(id(image))
        return original_near(image, *args, **kwargs)

    monkeypatch.setattr(video, "convert_frame", counting_convert)
    monkeypatch.setattr(windows, "crop_face", recording_crop)
    monkeypatch.setattr(detector, "detect", detect)
    monkeypatch.setattr(detector, "detect_near", detect_near)
    result = analyze_video(one_face_video, loaded, max_windows=3)  # 48 frames: windows 0-7, 20-27, 40-47
    assert len(converted) == sum(w.frames for w in result.windows) == 24, "the 24 frames of the windows, once each"
    assert seen["detect"] and set(seen["detect"]) <= set(converted)
    assert len(seen["crop"]) == 24 and set(seen["crop"]) <= set(converted)
