"""Scoring with the backbone run by onnxruntime gives PyTorch's numbers, is cached per checkpoint file, and falls
back to PyTorch when the export fails; heat maps keep the PyTorch network."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ml_app.detection import onnx_backbone
from ml_app.detection.checkpoints import build_model, load_checkpoint, new_checkpoint
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.network import INFERENCE_CHUNK, DeepfakeDetector, ModelConfig
from ml_app.detection.onnx_backbone import OnnxBackboneNetwork, backbone_graph, scoring_network
from ml_app.detection.prediction import analyze_video
from ml_app.detection.preprocessing import Preprocessing

from .conftest import small_checkpoint


def _network(head: str = "mean", backbone: str = "mobilenet_v2", size: int = 64) -> DeepfakeDetector:
    checkpoint = new_checkpoint(
        ModelConfig(backbone=backbone, hidden_size=16, head=head),
        Preprocessing(image_size=size),
        1 if head == "frame" else 4,
        pretrained="random",
    )
    network = build_model(checkpoint).use_channels_last()
    # batch norms with statistics of their own, as trained ones have (the export folds them into the convolutions);
    # with the initial ones a random network's features hardly depend on its input
    batch_norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for module in batch_norms:
        module.reset_running_stats()
        module.momentum = None  # a plain average over the batches below
    network.train()
    with torch.no_grad():
        network.frame_features(torch.rand(16, 3, size, size) * 3 - 1.5)
    network.eval()
    return network


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("head", "backbone"),
    [
        ("mean", "mobilenet_v2"),
        ("frame", "mobilenet_v2"),
        ("legacy_last_frame", "mobilenet_v2"),
        ("frame", "efficientnet_lite0"),
    ],
)
def test_onnxruntime_scores_as_pytorch_does(head, backbone):
    torch.manual_seed(0)
    network = _network(head, backbone)
    fast = OnnxBackboneNetwork(network, backbone_graph(network, 64, None), threads=1)
    clips = torch.rand(3, 4, 3, 64, 64) + torch.tensor([-1.5, 0.0, 1.5]).view(3, 1, 1, 1, 1)  # dark, grey, bright
    with torch.inference_mode():
        expected = network(clips)
    got = fast(clips)
    assert got.shape == expected.shape == (3, 2)
    assert torch.allclose(got, expected, atol=1e-4), (got, expected)
    assert not torch.allclose(got[0], got[1])  # different clips, different logits: the comparison means something


def test_more_frames_than_a_chunk_are_scored_in_chunks_alike():
    network = _network("frame")
    fast = OnnxBackboneNetwork(network, backbone_graph(network, 64, None), threads=1)
    frames = torch.rand(INFERENCE_CHUNK + 5, 3, 64, 64)
    with torch.inference_mode():
        expected = network.frame_features(frames)
    got = fast.features(frames)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_the_graph_is_exported_once_per_checkpoint_file(monkeypatch, tmp_path):
    network = _network()
    first = backbone_graph(network, 64, "ab" * 32)
    assert len(list((tmp_path / "cache").glob("backbone-abababab*.onnx"))) == 1

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the graph is cached")

    monkeypatch.setattr(onnx_backbone, "_export", no_export)
    assert backbone_graph(network, 64, "ab" * 32) == first
    with pytest.raises(AssertionError):  # another checkpoint file is exported
        backbone_graph(network, 64, "cd" * 32)


def test_the_cache_keeps_only_the_most_recently_used_graphs(monkeypatch, tmp_path):
    monkeypatch.setattr(onnx_backbone, "KEEP_GRAPHS", 2)
    network = _network()
    for digest in ("aa", "bb", "aa", "cc"):  # aa used again after bb: bb is the least recently used
        backbone_graph(network, 64, digest * 32)
    kept = sorted(path.name[len("backbone-") :][:2] for path in (tmp_path / "cache").glob("backbone-*.onnx"))
    assert kept == ["aa", "cc"]


def test_a_failed_export_leaves_scoring_to_pytorch(monkeypatch, caplog):
    network = _network()

    def broken(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::unknown' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(onnx_backbone, "_export", broken)
    with caplog.at_level(logging.WARNING, logger="ml_app.detection.onnx_backbone"):
        chosen = scoring_network(network, 64, None, torch.device("cpu"))
    assert chosen is network
    assert "aten::unknown" in caplog.text


def test_a_loaded_checkpoint_scores_with_onnxruntime_and_draws_with_pytorch(tmp_path, one_face_video):
    path = small_checkpoint(tmp_path / "model.pt")
    fast = load_detector_model(path, "cpu")
    slow = load_detector_model(path, "cpu", onnx_backbone=False)
    assert isinstance(fast.scoring, OnnxBackboneNetwork)
    assert isinstance(fast.model, DeepfakeDetector)  # heat maps need its gradients
    assert slow.scoring is slow.model
    assert fast.checkpoint.sha256 == load_checkpoint(path).sha256

    quick = analyze_video(one_face_video, fast, keep_crops=False)
    reference = analyze_video(one_face_video, slow, keep_crops=False)
    ours = [t.raw_probability for w in quick.windows for t in w.tracks]
    theirs = [t.raw_probability for w in reference.windows for t in w.tracks]
    assert ours and len(ours) == len(theirs)
    assert np.allclose(ours, theirs, atol=1e-5)
    assert quick.verdict == reference.verdict
