"""Issue 15 (7): export_onnx --quantize writes an int8 model checked against the float one on validation clips."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import onnx
import pytest
from django.core.management import CommandError, call_command

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video
from model_creation.training.quantize import QUANTIZATION_KEY, agreement_path

from . import media
from .conftest import small_checkpoint
from .test_error_report import clip_scores, varied_checkpoint
from .training_data import synthetic_manifest


def export(*args) -> str:
    out = StringIO()
    call_command("export_onnx", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def validation(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("int8")
    prep = load_checkpoint(small_checkpoint(root / "probe.pt")).preprocessing
    return synthetic_manifest(root / "clips", videos_per_label=3, length=8, preprocessing=prep)


@pytest.mark.parametrize("frame", [False, True], ids=["lstm", "frame"])
def test_an_int8_export_agrees_with_the_float_model_and_serves_the_app(validation, frame, tmp_path):
    manifest = validation
    checkpoint = varied_checkpoint(tmp_path / "model.pt", manifest, frame=frame)
    ops = "all" if frame else "linear"  # both operator sets; a frame model's only linear layer is its tiny head
    log = export(checkpoint, "--quantize", "--manifest", manifest, "--int8-ops", ops)
    path = checkpoint.with_suffix(".int8.onnx")
    assert f"Wrote {path}" in log and "int8 vs float on 12 validation clip(s) of 6 video(s)" in log
    figures = json.loads(agreement_path(path).read_text())
    stored = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(stored[QUANTIZATION_KEY]) == {k: v for k, v in figures.items() if k != "model"}
    raw = figures["raw"]
    assert figures["clips"] == 12 and figures["manifest"]["split"] == "all" and figures["tolerance"] == 0.05
    assert 0 <= raw["mean_abs_difference"] <= raw["max_abs_difference"] <= 0.05
    assert set(raw["auc"]) == {"clip", "video"} and "change" in raw["auc"]["video"]
    assert figures["ops"] == ops and figures["quantized_operators"]
    assert figures["int8_size_bytes"] < figures["float_size_bytes"] * (0.3 if frame else 1)
    # the app's .onnx path: the checkpoint's settings inside, scores within the reported difference of PyTorch's
    loaded = load_detector_model(path, "cpu")
    original = load_checkpoint(checkpoint)
    assert loaded.checkpoint.preprocessing == original.preprocessing
    assert loaded.checkpoint.sequence_length == original.sequence_length
    assert loaded.checkpoint.architecture == original.architecture
    _, float_scores = clip_scores(checkpoint, manifest)
    _, int8_scores = clip_scores(path, manifest)
    difference = np.abs(float_scores - int8_scores)
    assert difference.max() <= raw["max_abs_difference"] + 1e-4
    assert difference.mean() == pytest.approx(raw["mean_abs_difference"], abs=1e-4)
    if not frame:
        video = media.face_video(tmp_path / "face.mp4", frames=24)
        result = analyze_video(video, loaded, max_windows=1)
        reference = analyze_video(video, load_detector_model(checkpoint, "cpu"), max_windows=1)
        tolerance = raw["max_abs_difference"] + 1e-4
        assert result.fake_probability is not None and reference.fake_probability is not None
        assert abs(result.fake_probability - reference.fake_probability) <= tolerance
        # the verdicts agree unless the float score lies within int8's reported difference of the 0.5 boundary (an
        # untrained model scores near 0.5, and which side int8 lands on then depends on the CPU's kernels)
        if abs(reference.fake_probability - 0.5) > tolerance:
            assert result.verdict == reference.verdict


def test_quantizing_needs_validation_clips_the_checkpoint_can_score(validation, tmp_path):
    manifest = validation
    checkpoint = small_checkpoint(tmp_path / "m.pt")
    with pytest.raises(CommandError, match="--manifest"):
        export(checkpoint, "--quantize")
    with pytest.raises(CommandError, match="--manifest is for --quantize"):
        export(checkpoint, "--manifest", manifest)
    other = synthetic_manifest(tmp_path / "other", videos_per_label=1, length=8)  # default detector settings
    with pytest.raises(CommandError, match="other preprocessing"):
        export(checkpoint, "--quantize", "--manifest", other)
    with pytest.raises(CommandError, match="split 'val' has no face clip"):
        export(checkpoint, "--quantize", "--manifest", manifest, "--split", "val")
    assert not list(tmp_path.glob("*.onnx"))


def test_an_int8_model_outside_the_tolerance_is_not_written(validation, tmp_path):
    manifest = validation
    checkpoint = varied_checkpoint(tmp_path / "m.pt", manifest)
    with pytest.raises(CommandError, match="above the tolerance 1e-09; nothing was written"):
        export(checkpoint, "--quantize", "--manifest", manifest, "--int8-tolerance", "1e-9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
