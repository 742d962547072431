"""Checkpoint files: the round trip, and a specific error for every way a file can be unusable."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import zipfile

import pytest
import torch

from ml_app.detection import errors
from ml_app.detection.checkpoints import (
    FORMAT_VERSION,
    build_model,
    load_checkpoint,
    new_checkpoint,
    save_checkpoint,
)
from ml_app.detection.network import ModelConfig
from ml_app.detection.preprocessing import DetectorSettings, Preprocessing


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory):
    prep = Preprocessing(margin=0.3, image_size=96, colour_order="RGB", detector=DetectorSettings(max_side=480))
    checkpoint = new_checkpoint(
        ModelConfig(backbone="mobilenet_v2", hidden_size=12),
        prep,
        sequence_length=10,
        pretrained="random",
        metrics={"accuracy": 0.9, "auc": 0.95},
        training={"epochs": 3, "dataset": "test"},
    )
    path = tmp_path_factory.mktemp("ckpt") / "mobile_10_frames.pt"
    save_checkpoint(checkpoint, path)
    return checkpoint, path


def test_round_trip_keeps_weights_settings_and_metadata(checkpoint_file):
    original, path = checkpoint_file
    loaded = load_checkpoint(path)
    assert loaded.architecture == original.architecture
    assert loaded.preprocessing == original.preprocessing
    assert loaded.preprocessing.detector.max_side == 480 and loaded.preprocessing.margin == 0.3
    assert loaded.sequence_length == 10
    assert loaded.metrics == {"accuracy": 0.9, "auc": 0.95}
    assert loaded.training["epochs"] == 3 and loaded.training["untrained"] is True
    assert loaded.name == "mobile_10_frames"
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == original.sha256
    assert loaded.state_dict.keys() == original.state_dict.keys()
    assert all(torch.equal(loaded.state_dict[k], original.state_dict[k]) for k in original.state_dict)
    model = build_model(loaded)
    assert not model.training


def test_file_loads_with_weights_only(checkpoint_file):
    _, path = checkpoint_file
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["preprocessing"]["class_order"] == ["REAL", "FAKE"]


def test_half_precision_files_are_smaller_and_load_as_float32(checkpoint_file, tmp_path):
    original, path = checkpoint_file
    half = tmp_path / "half.pt"
    save_checkpoint(original, half, half=True)
    assert half.stat().st_size < 0.6 * path.stat().st_size
    loaded = load_checkpoint(half)
    weight = loaded.state_dict["classifier.weight"]
    assert weight.dtype == torch.float32
    assert torch.allclose(weight, original.state_dict["classifier.weight"], atol=1e-3)
    build_model(loaded)


def test_missing_file(tmp_path):
    with pytest.raises(errors.CheckpointNotFound):
        load_checkpoint(tmp_path / "none.pt")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(errors.NotACheckpoint, match="empty"):
        load_checkpoint(path)


def test_html_page_saved_as_pt(tmp_path):
    path = tmp_path / "model_87_acc_20_frames_final_data.pt"
    path.write_text("<!DOCTYPE html>\n<html><head><title>Google Drive - Virus scan warning</title></head></html>")
    with pytest.raises(errors.HtmlNotCheckpoint, match="HTML page"):
        load_checkpoint(path)


def test_truncated_file(checkpoint_file, tmp_path):
    _, path = checkpoint_file
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(errors.TruncatedCheckpoint, match="truncated"):
        load_checkpoint(cut)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(errors.NotACheckpoint):
        load_checkpoint(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_would_run_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _RunsCode(str(marker))}, path)
    with pytest.raises(errors.UnsafeCheckpoint, match="refused without running it"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_of_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(_RunsCode(str(marker))))
    with pytest.raises(errors.CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_original_apps_bare_state_dict_points_to_import(tmp_path):
    path = tmp_path / "model_90_acc_20_frames.pt"
    torch.save(
        {"model.0.weight": torch.zeros(1), "lstm.weight_ih_l0": torch.zeros(1), "linear1.weight": torch.zeros(1)}, path
    )
    with pytest.raises(errors.LegacyStateDict, match="import_checkpoint"):
        load_checkpoint(path)


def test_state_dict_of_something_else(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, path)
    with pytest.raises(errors.NotACheckpoint, match="not a checkpoint of this project"):
        load_checkpoint(path)


def _edited_copy(source, target, **changes):
    payload = torch.load(source, weights_only=True)
    payload.update(changes)
    torch.save(payload, target)
    return target


def test_newer_format_version(checkpoint_file, tmp_path):
    _, path = checkpoint_file
    newer = _edited_copy(path, tmp_path / "newer.pt", format_version=FORMAT_VERSION + 1)
    with pytest.raises(errors.UnsupportedCheckpointVersion, match="Upgrade"):
        load_checkpoint(newer)


def test_unknown_setting(checkpoint_file, tmp_path):
    _, path = checkpoint_file
    payload = torch.load(path, weights_only=True)
    broken = _edited_copy(path, tmp_path / "odd.pt", preprocessing={**payload["preprocessing"], "sharpen": True})
    with pytest.raises(errors.NotACheckpoint, match="sharpen"):
        load_checkpoint(broken)


def test_weights_that_do_not_fit_the_architecture(checkpoint_file, tmp_path):
    _, path = checkpoint_file
    payload = torch.load(path, weights_only=True)
    wrong = _edited_copy(path, tmp_path / "wrong.pt", architecture={**payload["architecture"], "hidden_size": 20})
    checkpoint = load_checkpoint(wrong)
    with pytest.raises(errors.ArchitectureMismatch, match="wrong shape"):
        build_model(checkpoint)


def test_missing_weights(checkpoint_file, tmp_path):
    _, path = checkpoint_file
    payload = torch.load(path, weights_only=True)
    weights = dict(payload["state_dict"])
    weights.pop("classifier.bias")
    checkpoint = load_checkpoint(_edited_copy(path, tmp_path / "partial.pt", state_dict=weights))
    with pytest.raises(errors.ArchitectureMismatch, match="missing weights"):
        build_model(checkpoint)


def test_old_style_zip_without_end_is_truncated_not_generic(checkpoint_file, tmp_path):
    _, path = checkpoint_file
    data = path.read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(data))
    cut = tmp_path / "half.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.TruncatedCheckpoint):
        load_checkpoint(cut)


# --- atomic writes --------------------------------------------------------------------------------------------------


def test_an_atomic_write_whose_writer_raises_leaves_the_old_file_and_no_temporary(tmp_path):
    from ml_app.detection.files import atomic_write

    target = tmp_path / "state.pt"
    target.write_bytes(b"old")

    def half_then_fail(temporary):
        temporary.write_bytes(b"half a new fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["state.pt"], "the temporary file is removed"
    atomic_write(target, lambda temporary: temporary.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and len(list(tmp_path.iterdir())) == 1


def test_an_atomic_write_gets_the_permissions_of_a_plain_open_not_the_temporary_files(tmp_path):
    """An installed checkpoint was left 0o600 (the temporary file's mode): unreadable for a web server's user."""
    from ml_app.detection.files import atomic_write

    old = os.umask(0o022)
    try:
        written = atomic_write(tmp_path / "model.pt", lambda temporary: temporary.write_bytes(b"weights"))
        assert stat.S_IMODE(written.stat().st_mode) == 0o644
        os.umask(0o077)
        private = atomic_write(tmp_path / "private.pt", lambda temporary: temporary.write_bytes(b"weights"))
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_failed_checkpoint_save_keeps_the_previous_checkpoint(checkpoint_file, tmp_path, monkeypatch):
    _, path = checkpoint_file
    checkpoint = load_checkpoint(path)  # a copy: saving sets its path and sha256
    target = tmp_path / "kept.pt"
    save_checkpoint(checkpoint, target)
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="no space"):
        save_checkpoint(checkpoint, target)
    monkeypatch.undo()
    assert target.read_bytes() == before and load_checkpoint(target).sequence_length == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.pt"]
