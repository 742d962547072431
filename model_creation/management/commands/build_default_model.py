"""``manage.py build_default_model``: rebuild the checkpoints in models/ from the project's shared data.

``--recipe 3`` (the default, the recipe of the shipped files) is :mod:`model_creation.default_build`: every shared
video and real face photo, candidates measured, the chosen frame model cross-validated and calibrated out of fold,
sequence models, leave-one-source-out experiments, the default chosen and installed with its test figures. (Recipe 2,
the files shipped before it, is in the project's history: commit 634de01.)
``--recipe 1`` is the first recipe, kept reproducible: it preprocesses the shared clips once per face detector it uses
(40-frame windows; shorter models train on runs inside them; ``DETECTORS`` says which length uses which), trains a
MobileNetV2 + LSTM per sequence length with self-blended fakes, evaluates each on its fixed held-out split, and
installs the best epoch of each, in half precision and with its test metrics, as
models/default_mobilenet_v2_<N>_frames.pt.
Prints the model card's tables; every figure in models/README.md comes from this output.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from model_creation.build_commands import BuildCommand
from model_creation.training.config import DEVICE_CHOICES
from model_creation.training.default_card import called, fmt
from model_creation.training.default_model import (
    BACKBONE,
    DATASET,
    DETECTORS,
    EPOCHS,
    LENGTHS,
    NAME,
    write_dataset_csv,
)
from model_creation.training.default_recipe import FOLDS, SCREEN_SEEDS


class Command(BuildCommand):
    help = (
        "Rebuild the default checkpoints from ../shared/data and install them in models/: recipe 3, the shipped "
        "files' (every shared video and real face photo, candidates cross-validated, calibration out of fold, "
        "leave-one-source-out; see models/README.md), or recipe 1 (the first default model: real clips and samples, "
        "MobileNetV2 + LSTM)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_build_arguments(parser, "runs/default_model", "clips, runs and reports go here")
        parser.add_argument(
            "--recipe",
            type=int,
            choices=(1, 3),
            default=3,
            help="3 (default): the recipe of the shipped files (every shared video and real face photo, candidates "
            "cross-validated, leave-one-source-out; models/README.md); 1: the first default model, kept reproducible",
        )
        recipe = parser.add_argument_group("recipe 3")
        recipe.add_argument(
            "--backbones", nargs="+", metavar="KEY", help="only these backbone candidates (default: all of the table)"
        )
        recipe.add_argument("--no-loso", action="store_true", help="skip the leave-one-source-out experiments")
        recipe.add_argument(
            "--screen-seeds",
            type=int,
            default=SCREEN_SEEDS,
            metavar="N",
            help="screen each backbone candidate N times, with seeds --seed, --seed+1, ..., and choose by the mean "
            f"held-out AUC; the card gives each seed's figures (default {SCREEN_SEEDS})",
        )
        recipe.add_argument(
            "--folds",
            type=int,
            default=FOLDS,
            help=f"cross-validation folds of the chosen frame model (default {FOLDS}; fewer for trying the recipe out)",
        )
        recipe.add_argument(
            "--photos",
            type=int,
            metavar="N",
            help="real face photos (FFHQ, CelebA, UTKFace, evenly spaced over them) whose faces, and their "
            "self-blended copies, also train the frame models (default: every one; 0: none)",
        )
        recipe.add_argument(
            "--frames-per-clip",
            type=int,
            metavar="K",
            help="frames of each video clip a frame model trains on an epoch, one from each of K stretches of the "
            "clip (default: each candidate's own, models/README.md)",
        )
        recipe.add_argument(
            "--pack",
            metavar="FILE",
            help="train from a pack_crops file instead of preprocessing DATA (for a lent GPU, with --device cuda): "
            "its video clips keep the pack's frames, so sequence models only up to that length",
        )
        recipe.add_argument(
            "--device", choices=DEVICE_CHOICES, default="auto", help="where every model trains and is tested"
        )
        parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
        parser.add_argument(
            "--epochs", type=int, help="epochs for every model (default: each model's own; for trying the recipe out)"
        )
        parser.add_argument("--windows", type=int, default=12, help="windows per video when preprocessing")
        parser.add_argument("--hidden-size", type=int, default=256)
        parser.add_argument("--batch-size", type=int, default=8, help="recipe 1 (recipe 3: each candidate's own)")
        parser.add_argument("--lr", type=float, default=3e-4)
        parser.add_argument(
            "--pretrained", help="MobileNetV2 ImageNet weights (default: DATA/weights/mobilenet_v2-b0353104.pth)"
        )
        parser.add_argument(
            "--detector-backend",
            choices=sorted(set(DETECTORS.values())),
            help="one face detector for every length (default: the recipe's per length: "
            + ", ".join(f"{length}: {backend}" for length, backend in sorted(DETECTORS.items()))
            + ")",
        )

    def handle(self, *args, **options) -> None:
        if options["recipe"] == 3:
            from model_creation.default_build import RecipeThree

            RecipeThree(self, options).run()
            return
        self.recipe_one(**options)

    def recipe_one(self, **options) -> None:
        data, work = Path(options["data"]).resolve(), Path(options["work"])
        pretrained = options["pretrained"] or data / "weights" / "mobilenet_v2-b0353104.pth"
        if not Path(pretrained).is_file():
            raise CommandError(f"No MobileNetV2 weights at '{pretrained}'; give --pretrained FILE.")
        lengths = sorted(set(options["lengths"]))
        started = time.perf_counter()
        try:
            dataset_csv = write_dataset_csv(data, work / "dataset.csv")
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc

        backends = {length: options["detector_backend"] or DETECTORS.get(length, "centerface") for length in lengths}
        preprocess_seconds = 0.0
        for backend in sorted(set(backends.values())):
            clips = clips_folder(work, backend)
            self.stdout.write(f"1/3 preprocessing {dataset_csv} into {clips} (faces found by {backend}) ...")
            mark = time.perf_counter()
            self._run(
                "preprocess_videos",
                dataset_csv,
                "--layout",
                "csv",
                "--dataset",
                DATASET,
                "--output",
                clips,
                "--sequence-length",
                max(*LENGTHS, *lengths),  # the recipe's clips whichever lengths this run builds
                "--windows",
                options["windows"],
                "--detector-backend",
                backend,
                "--workers",
                max(1, options["workers"]),
                "--no-progress",
            )
            preprocess_seconds += time.perf_counter() - mark

        for length in lengths:
            manifest = clips_folder(work, backends[length]) / "manifest.json"
            name = NAME.format(length=length)
            run_dir = work / f"train_{length}"
            self.stdout.write(f"2/3 training {name} ...")
            self._run(
                "train_model",
                "--manifest",
                manifest,
                "--output",
                run_dir,
                "--force",
                "--name",
                name,
                "--sequence-length",
                length,
                "--backbone",
                BACKBONE,
                "--hidden-size",
                options["hidden_size"],
                "--pretrained",
                pretrained,
                "--synthesize-fakes",
                "sbi",
                "--epochs",
                options["epochs"] or EPOCHS.get(length, 15),
                "--batch-size",
                options["batch_size"],
                "--lr",
                options["lr"],
                "--seed",
                options["seed"],
                "--val-fraction",
                "0.2",
                "--workers",
                options["workers"],
                "--no-progress",
                "--no-tensorboard",
            )
            self.stdout.write(f"3/3 evaluating {name} on the held-out test split ...")
            evaluation = run_dir / "test"
            self._run(
                "evaluate_model",
                run_dir / "best.pt",
                "--manifest",
                manifest,
                "--split",
                "test",
                "--synthesize-fakes",
                "sbi",
                "--output",
                evaluation,
                "--no-progress",
            )
            if not options["no_install"]:
                test = json.loads((evaluation / "report.json").read_text())
                self.install_tested(
                    run_dir / "best.pt",
                    Path(options["install_dir"]) / f"{name}.pt",
                    test,
                    "video level, held-out test split (real videos, their self-blended fakes and one labelled "
                    "FaceForensics++ fake); see models/README.md",
                    {"built_by": "manage.py build_default_model", "test_report": str(evaluation)},
                )
        report = collect_report(work, data, preprocess_seconds)
        report["this_run_seconds"] = time.perf_counter() - started
        (work / "build.json").write_text(json.dumps(report, indent=2, default=str))
        table = card_table(report)
        (work / "card_table.md").write_text(table + "\n")
        self.stdout.write(table)
        self.stdout.write(
            f"Report: {work / 'build.json'}; this run took {report['this_run_seconds'] / 60:.1f} min "
            f"(models reported: {', '.join(report['models'])})."
        )


def clips_folder(work: Path, backend: str) -> Path:
    """Where the clips made with one face detector go: ``clips`` for CenterFace (the default), ``clips_<backend>``
    for another, so that a rebuild of some lengths reuses the clips an earlier run made."""
    return work / ("clips" if backend == "centerface" else f"clips_{backend}")


def collect_report(work: Path, data: Path, preprocess_seconds: float) -> dict[str, Any]:
    """Everything the model card states, read back from the run folders in ``work``.

    Every length with a finished evaluation is reported, also one built by an earlier run into the same folder
    (``--lengths 40`` rebuilds one model and keeps the others' figures). Training time is the sum of the epochs'
    seconds in the run's history.csv.
    """
    report: dict[str, Any] = {
        "data": str(data),
        "preprocess_seconds_this_run": preprocess_seconds,
        "preprocessing": {},
        "models": {},
    }
    for clips in sorted(work.glob("clips*")):
        records = sorted((clips / "records").glob("*.json"))
        if not records or not (clips / "preprocess.json").is_file():
            continue
        backend = json.loads((clips / "preprocess.json").read_text())["preprocessing"]["detector"]["backend"]
        report["preprocessing"][backend] = {
            "clips": str(clips),
            "videos": len(records),
            # from the settings file written when preprocessing began to the last video's record (across resumes)
            "wall_seconds": max(path.stat().st_mtime for path in records) - (clips / "preprocess.json").stat().st_mtime,
        }
    report["videos"] = max((one["videos"] for one in report["preprocessing"].values()), default=0)
    for run_dir in sorted(work.glob("train_*"), key=lambda path: int(path.name.split("_")[1])):
        evaluation, summary = run_dir / "test" / "report.json", run_dir / "summary.json"
        if not (evaluation.is_file() and summary.is_file()):
            continue
        with open(run_dir / "history.csv", newline="") as handle:
            epochs = list(csv.DictReader(handle))
        train = json.loads(summary.read_text())
        preprocess = Path(train["config"]["manifest"]).parent / "preprocess.json"
        report["models"][run_dir.name.split("_")[1]] = {
            "name": train["config"]["name"],
            "detector": json.loads(preprocess.read_text())["preprocessing"]["detector"]["backend"]
            if preprocess.is_file()
            else "unknown",
            "train_seconds": sum(float(row["seconds"]) for row in epochs),
            "best_epoch": train["best_epoch"],
            "epochs_run": train["epochs_run"],
            "validation": train["best_metrics"],
            "test": json.loads(evaluation.read_text()),
        }
    return report


def card_table(report: dict[str, Any]) -> str:
    """The model card's results table, from evaluate_model's reports."""
    lines = [
        "| N | faces found by | best epoch | train time | test level | clips or videos (real / fake) | accuracy | AUC "
        "| EER | self-blended AUC | FF++ fake: fake probability |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for length, model in sorted(report["models"].items(), key=lambda item: int(item[0])):
        test = model["test"]
        ffpp = next((row for row in test.get("videos", []) if row.get("method") == "ffpp-deepfakes"), None)
        sbi = test.get("per_method", {}).get("self-blended", {})
        for level in ("clip", "video"):
            metrics = test["overall"][level]
            (tn, fp), (fn, tp) = metrics["confusion"]
            counts = f"{tn + fp} / {fn + tp}"
            lines.append(
                f"| {length} | {model.get('detector', 'unknown')} | {model['best_epoch']} of {model['epochs_run']} | "
                f"{model['train_seconds'] / 60:.0f} min | "
                f"{level} | {counts} | {fmt(metrics.get('accuracy'))} | {fmt(metrics.get('auc'))} | "
                f"{fmt(metrics.get('eer'))} | {fmt(sbi.get(level, {}).get('auc'))} | "
                f"{fmt(ffpp['fake_probability']) if ffpp else 'n/a'} |"
            )
    return "\n".join([*lines, "", *calibration_table(report)])


def calibration_table(report: dict[str, Any]) -> list[str]:
    """Per model: its calibration, thresholds, and how the test videos are called with them (evaluate_model's)."""
    lines = [
        "| N | calibration | REAL at or below | FAKE at or above | test video Brier raw -> calibrated "
        "| test real videos: FAKE / INCONCLUSIVE / REAL | test fake videos: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|",
    ]
    for length, model in sorted(report["models"].items(), key=lambda item: int(item[0])):
        test = model["test"]
        if "outcomes" not in test:
            continue
        thresholds, outcomes = test["thresholds"], test["outcomes"]
        method = test.get("calibration", {}).get("method", "none") if test.get("calibrated") else "none"
        raw = (test.get("raw_overall") or test["overall"])["video"].get("brier")

        lines.append(
            f"| {length} | {method} | {fmt(thresholds['real'])} | {fmt(thresholds['fake'])} | {fmt(raw)} -> "
            f"{fmt(test['overall']['video'].get('brier'))} | {called(outcomes['REAL'])} | "
            f"{called(outcomes['FAKE'])} |"
        )
    return lines
