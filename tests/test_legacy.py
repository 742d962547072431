"""Importing the original ResNeXt+LSTM app's checkpoints: the converted model predicts what the original predicted.

The original's module (``bench.original_app.Model``, its published source with random weights) has its state dict
saved under the original's naming scheme, converted with ``manage.py import_checkpoint``, and both run on the same
video.
"""

from __future__ import annotations

import json

import face_recognition
import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from bench.original_app import TRANSFORM as ORIGINAL_TRANSFORM
from bench.original_app import Model as OriginalModel
from ml_app.detection import errors
from ml_app.detection.checkpoints import build_model, load_checkpoint, save_checkpoint
from ml_app.detection.legacy import convert_legacy_state_dict, parse_legacy_name
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video
from ml_app.detection.video import VideoReader, probe_video

from . import media

SEQUENCE = 10


@pytest.fixture(scope="module")
def original():
    torch.manual_seed(7)
    model = OriginalModel(2).eval()
    with torch.no_grad():  # make the LSTM and classifier matter: the default init gives near-equal logits
        model.linear1.weight.mul_(40)
    return model


@pytest.fixture(scope="module")
def legacy_file(original, tmp_path_factory):
    path = tmp_path_factory.mktemp("legacy") / f"model_87_acc_{SEQUENCE}_frames_final_data.pt"
    torch.save(original.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def converted(legacy_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("converted") / "converted.pt"
    call_command("import_checkpoint", str(legacy_file), "--output", str(output))
    return output


def original_prediction(model, video_path):
    """What the original's predict view computed: faces[0] of face_recognition, BGR crops, softmax, class 0 = FAKE."""
    info = probe_video(video_path)
    crops = []
    with VideoReader(info) as reader:
        for frame in reader.read_window(0.0, SEQUENCE):
            bgr = np.ascontiguousarray(frame.image[:, :, ::-1])  # the original read frames with cv2: BGR
            top, right, bottom, left = face_recognition.face_locations(bgr)[0]
            crops.append(ORIGINAL_TRANSFORM(bgr[top:bottom, left:right, :]))
    with torch.no_grad():
        _, logits = model(torch.stack(crops).unsqueeze(0))
    return torch.softmax(logits, dim=1)[0]


def test_conversion_records_the_original_preprocessing(converted):
    checkpoint = load_checkpoint(converted)
    prep = checkpoint.preprocessing
    assert prep.colour_order == "BGR" and prep.crop == "box" and prep.margin == 0.0 and prep.image_size == 112
    assert prep.resize == "pil_bilinear" and prep.class_order == ("FAKE", "REAL")
    assert prep.detector.max_side is None and prep.detector.upsample == 1 and prep.detector.model == "hog"
    assert checkpoint.architecture.head == "legacy_last_frame" and not checkpoint.architecture.lstm_bias
    assert checkpoint.sequence_length == SEQUENCE
    assert checkpoint.metrics["accuracy"] == pytest.approx(0.87)
    assert checkpoint.origin["source_file"] == f"model_87_acc_{SEQUENCE}_frames_final_data.pt"


def test_converted_network_computes_what_the_original_did(original, converted):
    model = build_model(load_checkpoint(converted))
    torch.manual_seed(8)
    clip = torch.randn(1, SEQUENCE, 3, 112, 112)
    with torch.no_grad():
        _, theirs = original(clip)
        ours = model(clip)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_converted_checkpoint_predicts_like_the_original_app_on_a_video(original, converted, media_dir):
    # A video exactly one window long, so the original's "first N frames" and our window are the same frames.
    video = media.face_video(media_dir / "legacy.mp4", frames=SEQUENCE, width=320, height=240, faces=((60, 20, 180),))
    expected = original_prediction(original, video)
    result = analyze_video(video, load_detector_model(converted, "cpu"), max_windows=1)
    assert result.verdict in ("REAL", "FAKE")
    probability = result.windows[0].tracks[0].fake_probability
    assert probability == pytest.approx(float(expected[0]), abs=1e-4), "class 0 of the original is FAKE"
    assert result.verdict == ("FAKE" if expected[0] > expected[1] else "REAL")


def test_original_name_gives_accuracy_and_frames():
    assert parse_legacy_name("model_87_acc_20_frames_final_data.pt") == (87.0, 20)
    assert parse_legacy_name("model_97_acc_100_frames_FF_data.pt") == (97.0, 100)
    assert parse_legacy_name("checkpoint.pt") == (None, None)


def test_dataparallel_prefix_is_accepted(original, tmp_path):
    state = {f"module.{key}": value for key, value in original.state_dict().items()}
    checkpoint = convert_legacy_state_dict(state, "model_90_acc_20_frames.pt")
    model = build_model(checkpoint)
    assert torch.equal(model.classifier.weight, original.linear1.weight)


def test_name_without_frames_needs_sequence_length(original, tmp_path):
    path = tmp_path / "detector.pt"
    torch.save(original.state_dict(), path)
    with pytest.raises(CommandError, match="--sequence-length"):
        call_command("import_checkpoint", str(path), "--output", str(tmp_path / "out.pt"))
    call_command("import_checkpoint", str(path), "--sequence-length", "40", "--output", str(tmp_path / "out.pt"))
    assert load_checkpoint(tmp_path / "out.pt").sequence_length == 40


def test_an_lstm_with_bias_is_not_the_original(original):
    state = dict(original.state_dict())
    state["lstm.bias_ih_l0"] = torch.zeros(8192)
    with pytest.raises(errors.ArchitectureMismatch, match="bias"):
        convert_legacy_state_dict(state, "model_90_acc_20_frames.pt")


def test_importing_a_converted_checkpoint_again_is_refused(converted, tmp_path):
    with pytest.raises(CommandError, match="already in this project's format"):
        call_command("import_checkpoint", str(converted), "--output", str(tmp_path / "again.pt"))


def test_existing_output_is_not_overwritten_without_force(legacy_file, converted):
    with pytest.raises(CommandError, match="--force"):
        call_command("import_checkpoint", str(legacy_file), "--output", str(converted))


def test_converted_file_is_a_plain_checkpoint_file(converted, tmp_path):
    payload = torch.load(converted, weights_only=True)
    assert payload["format"] == "deepfake-detector-checkpoint"
    json.dumps({k: v for k, v in payload.items() if k != "state_dict"})  # all metadata is plain JSON-able data
    resaved = tmp_path / "resaved.pt"
    save_checkpoint(load_checkpoint(converted), resaved)
    assert load_checkpoint(resaved).architecture.head == "legacy_last_frame"
