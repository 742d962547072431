"""The classifier's shape conventions: windows in a batch never mix, heads, backbones and ImageNet initialisation."""

from __future__ import annotations

import logging
import os

import pytest
import torch
import torchvision

from ml_app.detection.errors import ConfigurationError
from ml_app.detection.network import (
    BACKBONE_NAMES,
    BACKBONE_TABLE,
    BACKBONES,
    INFERENCE_CHUNK,
    DeepfakeDetector,
    ModelConfig,
    get_backbone,
    use_fast_layout,
)

from .conftest import shared_path


@pytest.fixture(scope="module")
def resnext_model():
    torch.manual_seed(0)
    return DeepfakeDetector(ModelConfig(hidden_size=64), pretrained="random").eval()


def test_batch_of_two_windows_gives_each_the_same_output_as_alone(resnext_model):
    """The original app's LSTM read the batch axis as time: windows in one batch changed each other's scores."""
    torch.manual_seed(1)
    first, second = torch.randn(1, 6, 3, 64, 64), torch.randn(1, 6, 3, 64, 64)
    with torch.inference_mode():
        together = resnext_model(torch.cat([first, second]))
        alone = torch.cat([resnext_model(first), resnext_model(second)])
    assert together.shape == (2, 2)
    assert torch.allclose(together, alone, atol=1e-4)
    assert not torch.allclose(together[0], together[1], atol=1e-3), "different windows, different scores"


def test_lstm_reads_time_in_order(resnext_model):
    torch.manual_seed(2)
    clip = torch.randn(1, 6, 3, 64, 64)
    with torch.inference_mode():
        forwards = resnext_model(clip)
        backwards = resnext_model(clip.flip(1))
    assert resnext_model.lstm.batch_first
    assert not torch.allclose(forwards, backwards, atol=1e-5), "frame order matters to an LSTM"


def test_legacy_head_scores_the_last_frame_alone():
    torch.manual_seed(3)
    model = DeepfakeDetector(ModelConfig(hidden_size=32, lstm_bias=False, head="legacy_last_frame"), "random").eval()
    clip = torch.randn(2, 5, 3, 64, 64)
    changed = clip.clone()
    changed[:, :-1] = torch.randn(2, 4, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(model(clip), model(changed), atol=1e-6)
        assert torch.allclose(model(clip), model(clip[:, -1:]), atol=1e-6)


def test_mobilenet_backbone_and_configuration():
    config = ModelConfig(backbone="mobilenet_v2", hidden_size=24, num_layers=2, bidirectional=True, dropout=0.2)
    model = DeepfakeDetector(config, "random").eval()
    assert model.lstm.num_layers == 2 and model.lstm.bidirectional and model.lstm.hidden_size == 24
    assert model.classifier.in_features == 48
    with torch.inference_mode():
        assert model(torch.randn(3, 4, 3, 64, 64)).shape == (3, 2)


def test_channels_last_gives_the_same_numbers(resnext_model):
    import copy

    fast = copy.deepcopy(resnext_model).use_channels_last()
    clip = torch.randn(2, 3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(fast(clip), resnext_model(clip), atol=1e-4)


def test_scoring_runs_the_backbone_in_chunks_and_gives_the_same_numbers():
    """Scoring a batch of many frames calls the backbone INFERENCE_CHUNK frames at a time (faster on CPU); training
    (gradients on) keeps one call, and the numbers are those of one call either way."""
    torch.manual_seed(0)
    model = DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", head="frame"), pretrained="random").eval()
    calls: list[int] = []
    model.backbone.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    clips = torch.randn(5, 15, 3, 32, 32)  # 75 frames
    with torch.no_grad():
        whole = model.pool(model.backbone(clips.flatten(0, 1))).flatten(1)
        calls.clear()
        chunked = model.frame_features(clips.flatten(0, 1))
    assert calls == [INFERENCE_CHUNK, INFERENCE_CHUNK, 75 - 2 * INFERENCE_CHUNK]
    assert torch.allclose(chunked, whole, atol=1e-5)
    calls.clear()
    model.frame_features(clips.flatten(0, 1))
    assert calls == [75], "with gradients on, one call (the chunks would not save activation memory)"


def test_the_fast_layout_is_channels_last_on_cpu_only():
    model = DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", head="frame"), pretrained="random")
    assert use_fast_layout(model, torch.device("cuda")).channels_last is False  # not moved: only its layout is asked
    fast = use_fast_layout(model, torch.device("cpu"))
    assert fast.channels_last
    convolution = next(p for p in fast.backbone.parameters() if p.dim() == 4)
    assert convolution.is_contiguous(memory_format=torch.channels_last)


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(backbone="vgg16")
    with pytest.raises(ConfigurationError, match="Unknown architecture setting"):
        ModelConfig.from_dict({"backbone": "mobilenet_v2", "colour": "red"})
    with pytest.raises(ValueError, match=r"\(batch, time"):
        DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", hidden_size=8), "random")(torch.zeros(2, 3, 64, 64))


def test_random_initialisation_says_so_when_no_imagenet_weights_are_cached(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        model = DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", hidden_size=8), pretrained="imagenet")
    assert model.pretrained_from == "random"
    assert "no ImageNet weights in torchvision's cache" in caplog.text


def test_imagenet_weights_come_from_torchvisions_cache(tmp_path, monkeypatch):
    reference = torchvision.models.mobilenet_v2(weights=None)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    torch.save(reference.state_dict(), cache / os.path.basename(weights.url))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", hidden_size=8), pretrained="imagenet")
    assert model.pretrained_from.endswith(os.path.basename(weights.url))
    assert torch.equal(model.backbone[0][0].weight, reference.features[0][0].weight)


def test_resnext_weights_from_a_given_file(tmp_path):
    reference = torchvision.models.resnext50_32x4d(weights=None)
    path = tmp_path / "resnext.pth"
    torch.save(reference.state_dict(), path)
    model = DeepfakeDetector(ModelConfig(hidden_size=8), pretrained=path)
    assert torch.equal(model.backbone[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone[7][2].conv3.weight, reference.layer4[2].conv3.weight)


def test_a_weights_file_for_another_network_is_refused(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    with pytest.raises(ConfigurationError, match="does not hold resnext50_32x4d weights"):
        DeepfakeDetector(ModelConfig(hidden_size=8), pretrained=path)


def test_shipped_imagenet_mobilenet_weights_load():
    path = shared_path("weights", "mobilenet_v2-b0353104.pth")
    model = DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", hidden_size=8), pretrained=path)
    assert model.pretrained_from == str(path)
    assert model.backbone[0][0].weight.abs().sum() > 0


# --- the backbone table ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_every_backbone_entry_builds_a_trunk_with_its_feature_size(name):
    entry = get_backbone(name)
    assert entry.name == name and BACKBONES[name] == entry.feature_size
    trunk = entry.trunk().eval()
    with torch.inference_mode():
        features = trunk(torch.zeros(1, 3, 32, 32))
    assert features.shape[1] == entry.feature_size
    config = ModelConfig(backbone=name, hidden_size=4)
    assert config.feature_size == entry.feature_size
    assert DeepfakeDetector(config, "random").lstm.input_size == entry.feature_size


@pytest.mark.parametrize("name", [name for name in BACKBONE_NAMES if BACKBONE_TABLE[name].weights == "torchvision"])
def test_every_torchvision_entry_maps_all_torchvision_imagenet_keys_onto_its_trunk(name):
    """(EfficientNet-Lite0's bundled weights and custom_cnn are tested in test_frame_models.py.)"""
    reference = torchvision.models.get_model(name, weights=None)
    mapped = get_backbone(name).imagenet_keys(reference.state_dict())
    trunk = get_backbone(name).trunk()
    assert set(mapped) == set(trunk.state_dict()), "every trunk weight has a torchvision key, and no other key"
    trunk.load_state_dict(mapped, strict=True)


def test_the_table_drives_validation_and_every_backbone_choice():
    from django.core.management import load_command_class

    assert set(BACKBONE_NAMES) == set(BACKBONE_TABLE) and len(BACKBONE_NAMES) >= 2
    with pytest.raises(ValueError, match="choose one of " + ", ".join(BACKBONE_NAMES)):
        get_backbone("vgg16")
    for app, command in (("model_creation", "train_model"), ("ml_app", "create_checkpoint")):
        parser = load_command_class(app, command).create_parser("manage.py", command)
        flag = next(action for action in parser._actions if "--backbone" in action.option_strings)
        assert sorted(flag.choices) == sorted(BACKBONE_NAMES), command


def test_mobilenet_v2_trunk_is_torchvisions_module_for_module():
    """The project's own MobileNetV2 trunk (built without importing torchvision, for the cold start) has
    torchvision's keys and shapes and, with the same weights, computes the same numbers."""
    from ml_app.detection.mobilenet_v2 import mobilenet_v2_features

    torch.manual_seed(3)
    reference = torchvision.models.mobilenet_v2(weights=None).features.eval()
    torch.manual_seed(3)
    ours = mobilenet_v2_features().eval()
    # the same random initialisation from the same seed (seeded random checkpoints stay what they were)
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in reference.state_dict().items())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    ours.load_state_dict(reference.state_dict())
    frames = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(ours(frames), reference(frames))


def test_analysing_with_a_mobilenet_checkpoint_does_not_import_torchvision(tiny_checkpoint):
    """torchvision's import (with torch._dynamo through torchvision.ops) is a second of every cold start; a
    MobileNetV2 checkpoint is loaded and run without it."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from ml_app.detection.model_loading import load_detector_model\n"
        f"model = load_detector_model({str(tiny_checkpoint)!r}, 'cpu')\n"
        "print('torchvision' in sys.modules, 'torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr
