"""Issue 15 (parts 4 and 5): learning-rate schedules, optimisers, the monitored metric and early stopping, and
cross-validation by group with its report and ensemble."""

from __future__ import annotations

import csv
import json
import math
from io import StringIO
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command

from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.model_mapping import split_mapping
from model_creation.training.config import TrainConfig, TrainError
from model_creation.training.manifest import ClipRecord, VideoRecord, load_manifest
from model_creation.training.optimisers import build_optimizer, build_scheduler
from model_creation.training.schedule import warmup_cosine
from model_creation.training.splits import assign_splits
from model_creation.training.stopping import record_epoch, should_stop
from model_creation.training.train_state import Progress

from .training_data import synthetic_manifest

# custom_cnn with an 8-unit LSTM on 32-pixel, 2-frame clips: a few seconds per run.
FAST = [
    "--backbone",
    "custom_cnn",
    "--hidden-size",
    "8",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--no-progress",
    "--pretrained",
    "random",
    "--no-tensorboard",
    "--calibration",
    "none",
    "--no-augment",
]


def run(*args) -> str:
    out = StringIO()
    call_command("train_model", *map(str, args), stdout=out)
    return out.getvalue()


def history(output: Path) -> list[dict[str, str]]:
    with open(output / "history.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory) -> Path:
    """4 videos per class, one 2-frame clip each, each video its own group."""
    return synthetic_manifest(tmp_path_factory.mktemp("cv"), videos_per_label=4, clips_per_video=1, length=2, size=32)


# --- schedules ------------------------------------------------------------------------------------------------------


def _factors(scheduler: str, steps: int, steps_per_epoch: int = 3, **settings) -> list[float]:
    config = TrainConfig(manifest="m", output="o", scheduler=scheduler, lr=1.0, epochs=10, **settings)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([parameter], config)
    schedule = build_scheduler(optimizer, config, steps_per_epoch)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def _torch_rates(make, steps: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=1.0)
    schedule = make(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_each_schedule_is_torchs_curve_per_step_after_the_warm_up():
    per_epoch = 3
    restarts = _factors("cosine-restarts", 40, per_epoch, warmup_epochs=0, t0=2, t_mult=2, min_lr_factor=0.01)
    expected = _torch_rates(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2 * per_epoch, T_mult=2, eta_min=0.01),
        40,
    )
    assert restarts == pytest.approx(expected)
    # restarts at t0 and t0 * (1 + t_mult) epochs
    assert [step for step in range(1, 40) if restarts[step] > restarts[step - 1]] == [2 * per_epoch, 6 * per_epoch]
    step = _factors("step", 20, per_epoch, warmup_epochs=0, step_size=2, gamma=0.5)
    assert step == pytest.approx(
        _torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2 * per_epoch, gamma=0.5), 20)
    )
    assert step[0] == 1.0 and step[6] == 0.5 and step[12] == 0.25
    assert _factors("none", 12, per_epoch, warmup_epochs=0) == [1.0] * 12
    cosine = _factors("cosine", 30, per_epoch, warmup_epochs=1)
    assert cosine == pytest.approx([warmup_cosine(s, per_epoch, 10 * per_epoch, 0.01) for s in range(30)])
    # the warm-up ramps every schedule, which starts when it ends
    warm = _factors("step", 12, per_epoch, warmup_epochs=1, step_size=1, gamma=0.5)
    assert warm[:3] == pytest.approx([1 / 3, 2 / 3, 1.0]) and warm[3:6] == [1.0] * 3 and warm[6] == 0.5
    assert _factors("none", 6, per_epoch, warmup_epochs=1)[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])


@pytest.mark.parametrize(
    ("flags", "rates", "kind", "state_key"),
    [
        (["--scheduler", "cosine-restarts", "--t0", "1", "--t-mult", "2", "--optimizer", "sgd"], [1, 1, None, 1],
         torch.optim.SGD, "momentum_buffer"),
        (["--scheduler", "step", "--step-size", "1", "--gamma", "0.5", "--optimizer", "adam"], [1, 0.5, 0.25, 0.125],
         torch.optim.Adam, "exp_avg"),
        (["--scheduler", "none", "--monitor", "loss"], [1, 1, 1, 1], torch.optim.AdamW, "exp_avg"),
    ],
)  # fmt: skip
def test_a_run_uses_and_records_its_schedule_optimiser_and_monitor(small_manifest, tmp_path, flags, rates, kind,
                                                                   state_key):  # fmt: skip
    output = tmp_path / "run"
    common = ["--manifest", small_manifest, "--epochs", "4", "--patience", "10", "--lr", "1e-3", "--warmup-epochs", "0"]
    log = run(*common, "--output", output, *flags, *FAST)
    rows = history(output)
    used = [float(row["lr"]) / 1e-3 for row in rows]
    for value, expected in zip(used, rates, strict=True):
        if expected is None:  # halfway through the second cycle (2 epochs long)
            assert value == pytest.approx(0.01 + 0.99 * 0.5)
        else:
            assert value == pytest.approx(expected)
    checkpoint = load_checkpoint(output / "best.pt")
    config = checkpoint.training["config"]
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    assert config["scheduler"] == given["--scheduler"] and config["optimizer"] == given.get("--optimizer", "adamw")
    assert checkpoint.training["optimizer"] == config["optimizer"] and "Optimisation:" in log
    state = torch.load(output / "train_state.pt", weights_only=True)
    assert state_key in next(iter(state["optimizer"]["state"].values()))
    assert kind is type(build_optimizer([torch.nn.Parameter(torch.zeros(1))], TrainConfig(**{**config})))
    if config["monitor"] == "loss":
        losses = [float(row["val_loss"]) for row in rows]
        assert checkpoint.training["best_epoch"] == losses.index(min(losses)) + 1
        best = pytest.approx(min(losses))
        assert checkpoint.training["monitor"] == {"metric": "loss", "min_delta": 0.0, "best": best}
    # a resumed run keeps its scheduler and optimiser
    with pytest.raises(CommandError, match="--optimizer differ"):
        run("--output", output, "--resume", "--optimizer", "adamw" if "sgd" in flags else "sgd", "--epochs", "5")
    with pytest.raises(CommandError, match="--scheduler differ"):
        run("--output", output, "--resume", "--scheduler", "cosine", "--epochs", "5")


def _progress_of(values: list[float], monitor: str, min_delta: float) -> tuple[Progress, list[bool], list[int]]:
    progress = Progress()
    key = {"auc": "auc", "f1": "f1", "loss": "log_loss"}[monitor]
    improved, bad = [], []
    for epoch, value in enumerate(values, start=1):
        improved.append(record_epoch(progress, epoch, {key: value, "log_loss": value}, monitor, min_delta))
        bad.append(progress.bad_epochs)
    return progress, improved, bad


def test_min_delta_decides_what_counts_as_better_and_patience_counts_the_rest():
    progress, improved, bad = _progress_of([0.70, 0.705, 0.709, 0.72, 0.80], "auc", 0.01)
    assert improved == [True, False, False, True, True] and bad == [0, 1, 2, 0, 0]
    assert progress.best["epoch"] == 5
    _, improved, bad = _progress_of([0.70, 0.705, 0.709, 0.708], "auc", 0.01)
    assert bad == [0, 1, 2, 3] and should_stop(_progress_of([0.70, 0.705, 0.709, 0.708], "auc", 0.01)[0], 3)
    _, improved, _ = _progress_of([0.70, 0.705, 0.709, 0.712], "auc", 0.0)
    assert improved == [True, True, True, True], "without min-delta every improvement counts"
    progress, improved, bad = _progress_of([0.70, 0.68, 0.60, 0.59, 0.65], "loss", 0.05)
    assert improved == [True, False, True, False, False] and bad == [0, 1, 0, 1, 2], "loss is minimised"
    assert progress.best["epoch"] == 3
    _, improved, _ = _progress_of([0.4, 0.6, 0.5], "f1", 0.0)
    assert improved == [True, True, False]
    nan_auc = Progress()
    assert record_epoch(nan_auc, 1, {"auc": math.nan, "log_loss": 0.7}, "auc")
    assert record_epoch(nan_auc, 2, {"auc": math.nan, "log_loss": 0.6}, "auc"), "the loss stands in for AUC"


def test_bad_schedule_options_are_refused(small_manifest, tmp_path):
    common = ["--manifest", small_manifest, "--output", tmp_path / "x", *FAST]
    for flags, message in (
        (["--scheduler", "step", "--t0", "3"], "--t0 apply to --scheduler cosine-restarts only"),
        (["--gamma", "0.5"], "--gamma apply to --scheduler step only"),
        (["--scheduler", "cosine-restarts", "--t0", "0"], "--t0 and --t-mult must be whole numbers"),
        (["--scheduler", "step", "--gamma", "1.5"], "--gamma between 0"),
        (["--min-delta", "-1"], "cannot be negative"),
        (["--keep-ensemble", "x"], "--keep-ensemble needs --folds"),
        (["--folds", "2", "--keep-ensemble", "20"], "not a number alone"),
    ):
        with pytest.raises(CommandError, match=message):
            run(*common, *flags)
    with pytest.raises(TrainError, match="--scheduler must be one of cosine, cosine-restarts, step, none"):
        TrainConfig(manifest="m", output="o", scheduler="linear")
    with pytest.raises(TrainError, match="--optimizer must be one of"):
        TrainConfig(manifest="m", output="o", optimizer="rmsprop")
    assert not (tmp_path / "x").exists(), "refused before anything was written"


# --- cross-validation -----------------------------------------------------------------------------------------------


def _grouped_videos() -> list[VideoRecord]:
    """12 groups of a real source video and two fakes of it, 4 fake-only groups, and 2 test groups."""
    videos = []

    def add(video_id: str, label: str, group: str, split: str = "", clips: int = 2) -> None:
        video = VideoRecord(video_id=video_id, video="", source_path="", label=label, dataset="d", group=group,
                            split=split)  # fmt: skip
        video.clips = [ClipRecord("", window, 0, 0, 0, 8, 0) for window in range(clips)]
        videos.append(video)

    for group in range(12):
        add(f"r{group}", "REAL", f"g{group}", clips=1 + group % 3)
        add(f"f{group}a", "FAKE", f"g{group}")
        add(f"f{group}b", "FAKE", f"g{group}")
    for group in range(4):
        add(f"lone{group}", "FAKE", f"lone{group}", clips=3)
    for group in range(2):
        add(f"t{group}", "REAL", f"t{group}", split="test")
        add(f"t{group}f", "FAKE", f"t{group}", split="test")
    return videos


def test_folds_keep_groups_whole_cover_every_video_once_and_balance_the_classes():
    videos = _grouped_videos()
    folds = 4
    splits = [assign_splits(videos, folds=folds, fold=k, seed=7) for k in range(1, folds + 1)]
    validated_in: dict[str, list[int]] = {}
    for number, split in enumerate(splits, start=1):
        sides: dict[str, set[str]] = {}
        for video in videos:
            sides.setdefault(video.group, set()).add(split.split_of[video.video_id])
            if split.split_of[video.video_id] == "val":
                validated_in.setdefault(video.video_id, []).append(number)
        assert all(len(found) == 1 for found in sides.values()) and not split.leaking_groups
        assert sides["t0"] == sides["t1"] == {"test"}, "the test split stays out of every fold"
        val = split.videos(videos, "val")
        counts = {label: sum(len(v.clips) for v in val if v.label == label) for label in ("REAL", "FAKE")}
        assert counts["REAL"] and counts["FAKE"]
        assert abs(counts["FAKE"] - 60 / folds) <= 6 and abs(counts["REAL"] - 24 / folds) <= 3, counts
        assert split.source == f"fold {number} of {folds}, by group"
    non_test = [video.video_id for video in videos if video.split != "test"]
    assert sorted(validated_in) == sorted(non_test) and all(len(f) == 1 for f in validated_in.values())
    again = [assign_splits(videos, folds=folds, fold=k, seed=7).split_of for k in range(1, folds + 1)]
    assert again == [split.split_of for split in splits], "deterministic for a seed"


def test_cross_validation_trains_each_fold_and_reports_mean_and_std(small_manifest, tmp_path):
    output = tmp_path / "cv"
    common = ["--manifest", small_manifest, "--epochs", "1", "--seed", "2", *FAST]
    log = run(*common, "--output", output, "--folds", "3", "--keep-ensemble", "tiny-cv", "--name", "tiny")
    report = json.loads((output / "cross_validation.json").read_text())
    assert report["status"] == "done" and report["folds"] == 3 and len(report["per_fold"]) == 3
    manifest = load_manifest(small_manifest)
    validated = []
    for number, fold in enumerate(report["per_fold"], start=1):
        best = output / f"fold_{number}" / "best.pt"
        assert fold["best_pt"] == str(best) and best.is_file()
        checkpoint = load_checkpoint(best)
        assert checkpoint.training["fold"] == {"fold": number, "folds": 3}
        assert checkpoint.training["split_source"] == f"fold {number} of 3, by group"
        assert checkpoint.name == f"tiny_fold_{number}"
        validated.append(sum(checkpoint.training["clips"]["val"].values()))
        for key in ("video_auc", "video_accuracy", "video_f1", "video_eer"):
            assert key in fold
        assert f"fold {number} (best epoch" in log
    assert sum(validated) == sum(len(video.clips) for video in manifest.videos)
    summary = report["summary"]
    accuracies = [fold["video_accuracy"] for fold in report["per_fold"]]
    assert summary["video_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 3)
    assert summary["video_accuracy"]["std"] >= 0 and "mean ± std" in log
    ensemble = report["ensemble"]
    assert ensemble["files"] == [str(output / f"fold_{k}" / "best.pt") for k in (1, 2, 3)]
    printed = json.loads(log.split("MODEL_MAPPING entry:\n")[1].splitlines()[0])
    _, ensembles = split_mapping(printed)
    assert ensembles == {"tiny-cv": [str((output / f"fold_{k}" / "best.pt").resolve()) for k in (1, 2, 3)]}
    # --resume continues the folds (all finished here) and writes the report again
    resumed = run("--output", output, "--resume", "--no-progress")
    assert resumed.count("Resumed after epoch 1") == 3 and "mean ± std" in resumed
    with pytest.raises(CommandError, match="holds a cross-validation"):
        run(*common, "--output", output, "--folds", "3")


def test_impossible_folds_are_refused_with_a_clear_message(small_manifest, tmp_path):
    common = ["--manifest", small_manifest, *FAST]
    with pytest.raises(CommandError, match="--folds must be at least 2"):
        run(*common, "--output", tmp_path / "one", "--folds", "1")
    with pytest.raises(CommandError, match=r"--folds 9 needs at least 9 groups .* the manifest has 8"):
        run(*common, "--output", tmp_path / "nine", "--folds", "9")
    assert not (tmp_path / "nine" / "fold_1").exists()
