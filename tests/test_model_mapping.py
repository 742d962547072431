"""MODEL_MAPPING and the models folder decide which checkpoint analyses which sequence length."""

from __future__ import annotations

import os
import time

import pytest

from ml_app.detection.errors import NoCheckpointForLength
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.model_mapping import (
    best_first,
    choose_from_mapping,
    discover_checkpoints,
    effective_mapping,
    resolve_checkpoint,
)

from .conftest import small_checkpoint


def _edit_metrics(path, **metrics):
    import torch

    payload = torch.load(path, weights_only=True)
    payload["metrics"] = metrics
    payload["training"] = {"epochs": 1}
    torch.save(payload, path)


def test_explicit_mapping_wins(tmp_path, tiny_checkpoint):
    found = resolve_checkpoint(8, {"8": str(tiny_checkpoint)}, tmp_path, tmp_path)
    assert found == tiny_checkpoint


def test_relative_mapping_paths_are_relative_to_the_project(tmp_path):
    small_checkpoint(tmp_path / "models" / "a.pt", sequence_length=10)
    assert resolve_checkpoint(10, {10: "models/a.pt"}, tmp_path / "elsewhere", tmp_path) == tmp_path / "models" / "a.pt"


def test_mapping_to_a_missing_file_says_so(tmp_path):
    with pytest.raises(NoCheckpointForLength, match="does not exist") as caught:
        resolve_checkpoint(20, {20: "models/gone.pt"}, tmp_path, tmp_path)
    assert "create_checkpoint --sequence-length 20" in caught.value.message


def test_lengths_are_found_in_the_models_folder(tmp_path):
    small_checkpoint(tmp_path / "ten.pt", sequence_length=10)
    small_checkpoint(tmp_path / "twenty.pt", sequence_length=20)
    (tmp_path / "broken.pt").write_text("<html>not found</html>")
    mapping = effective_mapping({}, tmp_path, tmp_path)
    assert mapping == {10: tmp_path / "ten.pt", 20: tmp_path / "twenty.pt"}
    usable, skipped = discover_checkpoints(tmp_path)
    assert len(usable) == 2
    assert "HTML page" in skipped[tmp_path / "broken.pt"]


def test_trained_and_more_accurate_checkpoints_are_preferred(tmp_path):
    untrained = small_checkpoint(tmp_path / "a_untrained.pt", sequence_length=10)
    good = small_checkpoint(tmp_path / "b_good.pt", sequence_length=10)
    better = small_checkpoint(tmp_path / "c_better.pt", sequence_length=10)
    _edit_metrics(good, accuracy=0.8)
    _edit_metrics(better, accuracy=0.9)
    os.utime(untrained, (time.time() + 100, time.time() + 100))  # newest, but untrained
    assert resolve_checkpoint(10, {}, tmp_path, tmp_path) == better


def test_unknown_length_lists_what_exists(tmp_path):
    small_checkpoint(tmp_path / "ten.pt", sequence_length=10)
    with pytest.raises(NoCheckpointForLength, match=r"available: 10\)"):
        resolve_checkpoint(60, {}, tmp_path, tmp_path)


def test_loaded_models_are_cached_per_process(tmp_path):
    path = small_checkpoint(tmp_path / "cached.pt")
    first = load_detector_model(path, "cpu")
    assert load_detector_model(path, "cpu") is first
    small_checkpoint(path)  # rewritten: a new file is loaded again
    os.utime(path, (time.time() + 5, time.time() + 5))
    second = load_detector_model(path, "cpu")
    assert second is not first
    assert second.checkpoint.sha256 != first.checkpoint.sha256


def test_the_choice_says_why(tmp_path):
    small_checkpoint(tmp_path / "models" / "a.pt", sequence_length=10)
    mapped = choose_from_mapping(10, {10: "models/a.pt"}, tmp_path / "models", tmp_path)
    assert mapped.source == "mapping" and mapped.reason == "named in MODEL_MAPPING for 10 frames"
    found = choose_from_mapping(10, {}, tmp_path / "models", tmp_path)
    assert found.path == tmp_path / "models" / "a.pt" and found.source == "models_dir"
    assert found.reason == "best checkpoint for 10 frames in models/ (the only one)"
    small_checkpoint(tmp_path / "models" / "b.pt", sequence_length=10)
    _edit_metrics(tmp_path / "models" / "b.pt", accuracy=0.7)
    two = choose_from_mapping(10, {}, tmp_path / "models", tmp_path)
    assert two.path.name == "b.pt"
    assert "preferred of 2: trained first, then highest reported accuracy, then newest" in two.reason


def test_one_preference_order_newest_breaks_ties(tmp_path):
    older = small_checkpoint(tmp_path / "a_older.pt", sequence_length=10)
    newer = small_checkpoint(tmp_path / "b_newer.pt", sequence_length=10)
    os.utime(older, (time.time() - 100, time.time() - 100))
    found, _ = discover_checkpoints(tmp_path)
    assert [s.path for s in best_first(found)] == [newer, older]
    assert resolve_checkpoint(10, {}, tmp_path, tmp_path) == newer


@pytest.mark.django_db
def test_sync_and_the_folder_scan_prefer_the_same_file(site_dirs, settings):
    """The registry's sync activates, for a length without an active checkpoint, what the folder scan would pick."""
    from io import StringIO

    from django.core.management import call_command

    from ml_app.models import Checkpoint

    folder = settings.MODELS_DIR
    untrained = small_checkpoint(folder / "a_untrained.pt", sequence_length=10)
    good = small_checkpoint(folder / "b_good.pt", sequence_length=10)
    better = small_checkpoint(folder / "c_better.pt", sequence_length=10)
    older_better = small_checkpoint(folder / "d_better_older.pt", sequence_length=10)
    _edit_metrics(good, accuracy=0.8)
    _edit_metrics(better, accuracy=0.9)
    _edit_metrics(older_better, accuracy=0.9)
    os.utime(older_better, (time.time() - 100, time.time() - 100))  # as accurate, but older
    os.utime(untrained, (time.time() + 100, time.time() + 100))  # newest, but untrained
    assert resolve_checkpoint(10, {}, folder, settings.BASE_DIR) == better
    call_command("sync_checkpoints", stdout=StringIO(), stderr=StringIO())
    assert Checkpoint.objects.get(is_active=True).file_path == better
