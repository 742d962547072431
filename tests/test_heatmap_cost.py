"""Heat maps that cost little: one pass for a window's clips gives each clip the map it gets alone, the Grad-CAM
engine is built once per network and records nothing while the network scores, and ``flagged`` maps only each
flagged person's most suspicious windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_app.detection import gradcam
from ml_app.detection.heatmaps import add_heatmaps, compute_heatmap, compute_heatmaps, select_tracks
from ml_app.detection.network import ModelConfig, get_backbone
from ml_app.detection.results import AnalysisResult, PersonResult, TrackScore, WindowResult

from .test_heatmaps import crops, every_feature_says_fake, fresh_model


@pytest.fixture(scope="module")
def lstm_model():
    return fresh_model(ModelConfig(backbone="mobilenet_v2", hidden_size=16), 8)


@pytest.mark.parametrize("head", ["lstm", "frame"])
def test_one_pass_for_several_clips_gives_each_the_map_it_gets_alone(lstm_model, head):
    loaded = lstm_model if head == "lstm" else every_feature_says_fake(
        fresh_model(ModelConfig(backbone="mobilenet_v2", head="frame"), 1)
    )  # fmt: skip
    sequences = [crops(8, seed) for seed in (1, 2, 3)]
    together = compute_heatmaps(loaded, sequences)
    alone = [compute_heatmap(loaded, one) for one in sequences]
    assert [m.frame for m in together] == [m.frame for m in alone]
    for batched, single in zip(together, alone, strict=True):
        np.testing.assert_allclose(batched.map, single.map, atol=2e-3)
    assert np.abs(together[0].map - together[1].map).mean() > 0.01, "the clips do not share one map"


def test_sequences_of_different_lengths_are_not_one_pass(lstm_model):
    with pytest.raises(ValueError, match="one length"):
        compute_heatmaps(lstm_model, [crops(8, 1), crops(6, 2)])


def test_the_engine_is_built_once_and_records_nothing_while_scoring(lstm_model):
    network = lstm_model.model
    layer = network.backbone.get_submodule(get_backbone(network.config.backbone).cam_layer)
    compute_heatmap(lstm_model, crops(8, 1))
    built = gradcam.engine(network, layer)
    hooks = len(layer._forward_hooks)
    compute_heatmap(lstm_model, crops(8, 2))
    assert gradcam.engine(network, layer) is built and len(layer._forward_hooks) == hooks, "no hooks per map"
    with torch.no_grad():
        network(torch.zeros(2, 8, 3, 64, 64))
    recorder = built._cam.activations_and_grads
    assert recorder.activations == [] and recorder.gradients == [], "scoring keeps no activations"


def _people_result(probabilities: dict[int, list[float]], verdicts: dict[int, str]) -> AnalysisResult:
    """Person p is face 0 in the windows listed for them, with those fake probabilities; one window per entry."""
    result = AnalysisResult(verdict="FAKE", sequence_length=8, video={}, checkpoint={"sha256": "x"})
    index = 0
    for person, scores in probabilities.items():
        for score in scores:
            window = WindowResult(index, index * 8, index * 8 + 7, 0.0, 0.3, 8, "scored", 1)
            window.tracks.append(TrackScore(0, person, score, [[0, 0, 1, 1]] * 8, 0, crops=crops(8, index)))
            result.windows.append(window)
            index += 1
        windows = [w.index for w in result.windows if w.tracks[0].person_id == person]
        result.people.append(PersonResult(person, windows, float(np.mean(scores)), verdicts[person]))  # type: ignore[arg-type]
    return result


def test_flagged_maps_each_flagged_persons_most_suspicious_windows():
    result = _people_result(
        {0: [0.6, 0.9, 0.7, 0.95], 1: [0.1, 0.2], 2: [0.5, 0.8, 0.4]}, {0: "FAKE", 1: "REAL", 2: "INCONCLUSIVE"}
    )
    chosen = [(window.index, track.fake_probability) for window, track in select_tracks(result, "flagged", 2)]
    assert chosen == [(1, 0.9), (3, 0.95), (6, 0.5), (7, 0.8)], "person 2's two highest: 0.8 and 0.5"
    assert len(select_tracks(result, "flagged", 0)) == 7, "0: every window of a flagged person"
    assert len(select_tracks(result, "all", 2)) == 9, "all: every scored window, whatever the cap"


def test_drawing_reports_its_own_stage_and_fraction_and_the_state(lstm_model):
    result = _people_result({0: [0.6, 0.9, 0.7]}, {0: "FAKE"})
    heard: list[tuple[str, float]] = []
    add_heatmaps(result, [lstm_model], "flagged", 0, lambda stage, fraction: heard.append((str(stage), fraction)))
    assert {stage for stage, _ in heard} == {"heatmaps"}
    fractions = [fraction for _, fraction in heard]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0 and len(set(fractions)) >= 3
    assert result.heatmaps["state"] == "done" and len(result.heatmap_list()) == 3
    off = _people_result({0: [0.6]}, {0: "FAKE"})
    add_heatmaps(off, [lstm_model], "off")
    assert off.heatmaps["state"] == "off" and off.heatmap_list() == []


def test_maps_are_drawn_on_the_threads_set_and_the_analysis_gets_its_own_back():
    from ml_app.detection.threads import limited

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with limited(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with limited(0), limited(8):
            assert torch.get_num_threads() == 2, "0: as it is; never more than the analysis has"
    finally:
        torch.set_num_threads(before)
