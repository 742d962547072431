"""``manage.py build_photo_model``: rebuild the default photo model in models/ from the project's shared data.

Preprocesses ``gan_faces`` (FFHQ real, StyleGAN fake) with the detector, as photos are analysed on the site; trains a
frame model (no LSTM) on the fixed training split, calibrated on the validation split; evaluates it on the held-out
test photos and, to show how far a GAN-face model carries to face swaps, on the shared video clips; installs the best
epoch with its test metrics as models/default_photo_<backbone>.pt. Prints the card's table; every figure in
models/README.md's "The photo model" comes from this output.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from ml_app.detection.network import BACKBONE_NAMES
from model_creation.build_commands import BuildCommand
from model_creation.training.photo_model import BACKBONE, DATASET, EPOCHS, IMAGE_SIZE, write_photo_csv

# The shared video clips the photo model is also scored on (frames of face swaps it never saw): layout arguments.
CARRY_OVER = {
    "samples": ("samples/videos", ["--layout", "folder"]),
    "web_clips": ("web_clips", ["--layout", "folder"]),
    "ffpp_c40": ("ffpp_c40", ["--layout", "ffpp", "--compression", "c40"]),
}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


class Command(BuildCommand):
    help = (
        "Rebuild the default photo model (a frame model, GAN faces vs real faces) from ../shared/data and install it "
        "in models/. Training takes about 10 minutes on an idle 2-core CPU; with the clips' carry-over evaluation the "
        "whole build took 27 minutes here while other jobs ran (models/README.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_build_arguments(parser, "runs/photo_model", "crops, runs and reports go here")
        parser.add_argument("--backbone", choices=BACKBONE_NAMES, default=BACKBONE)
        parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
        parser.add_argument("--epochs", type=int, default=EPOCHS)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--lr", type=float, default=3e-4)
        parser.add_argument(
            "--pretrained",
            help="backbone weights (default: the backbone's own ImageNet weights; for mobilenet_v2 "
            "DATA/weights/mobilenet_v2-b0353104.pth)",
        )
        parser.add_argument(
            "--carry-over",
            nargs="*",
            choices=sorted(CARRY_OVER),
            default=sorted(CARRY_OVER),
            help="shared video sets to score the photo model on as well (none: give the flag alone)",
        )

    def handle(self, *args, **options) -> None:
        data, work = Path(options["data"]).resolve(), Path(options["work"])
        backbone, size = options["backbone"], options["image_size"]
        pretrained = options["pretrained"] or (
            data / "weights" / "mobilenet_v2-b0353104.pth" if backbone == "mobilenet_v2" else "imagenet"
        )
        started = time.perf_counter()
        try:
            photos_csv = write_photo_csv(data, work / "photos.csv")
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        crops = work / f"crops_{size}"
        self.stdout.write(f"1/4 finding and cropping the faces of {photos_csv} into {crops} ...")
        self._run(
            "preprocess_images",
            photos_csv,
            "--layout",
            "csv",
            "--dataset",
            DATASET,
            "--output",
            crops,
            "--image-size",
            size,
            "--workers",
            max(1, options["workers"]),
            "--no-progress",
        )
        name = Path(self._target(options)).stem
        run_dir = work / f"train_{backbone}_{size}"
        self.stdout.write(f"2/4 training {name} ({backbone}, {size} px) ...")
        self._run(
            "train_model",
            "--manifest",
            crops / "manifest.json",
            "--output",
            run_dir,
            "--force",
            "--name",
            name,
            "--frame-model",
            "--backbone",
            backbone,
            "--pretrained",
            pretrained,
            "--epochs",
            options["epochs"],
            "--batch-size",
            options["batch_size"],
            "--lr",
            options["lr"],
            "--seed",
            options["seed"],
            "--workers",
            options["workers"],
            "--no-progress",
            "--no-tensorboard",
        )
        self.stdout.write("3/4 evaluating on the held-out test photos ...")
        reports = {"test": self._evaluate(run_dir, ["--manifest", crops / "manifest.json", "--split", "test"], "test")}
        for carried in options["carry_over"]:
            folder, layout = CARRY_OVER[carried]
            if not (data / folder).is_dir():
                self.stdout.write(f"   {carried}: {data / folder} is absent, skipped")
                continue
            self.stdout.write(f"4/4 scoring the frames of {carried}'s videos ...")
            arguments = ["--videos", data / folder, *layout, "--split", "all", "--work-dir", work / f"clips_{carried}"]
            reports[carried] = self._evaluate(run_dir, [*arguments, "--workers", max(1, options["workers"])], carried)
        summary = {"seconds": time.perf_counter() - started, "run": str(run_dir), "reports": reports}
        (work / "build.json").write_text(json.dumps(summary, indent=2, default=str))
        self.stdout.write(card_table(reports))
        if not options["no_install"]:
            self._install(run_dir / "best.pt", Path(self._target(options)), reports)
        self.stdout.write(f"Report: {work / 'build.json'}; this run took {summary['seconds'] / 60:.1f} min.")

    @staticmethod
    def _target(options: dict[str, Any]) -> str:
        return str(Path(options["install_dir"]) / f"default_photo_{options['backbone']}.pt")

    def _evaluate(self, run_dir: Path, arguments: list[Any], label: str) -> dict[str, Any]:
        output = run_dir / f"eval_{label}"
        self._run("evaluate_model", run_dir / "best.pt", *arguments, "--output", output, "--no-progress")
        return json.loads((output / "report.json").read_text())

    def _install(self, best: Path, target: Path, reports: dict[str, dict[str, Any]]) -> None:
        """The best epoch, carrying its held-out test metrics; 'accuracy' is what the site shows."""
        from ml_app.detection.checkpoints import load_checkpoint, save_checkpoint

        checkpoint = load_checkpoint(best)
        photo = reports["test"]["overall"]["video"]
        checkpoint.metrics = {
            "accuracy": photo["accuracy"],
            "auc": photo["auc"],
            "eer": photo["eer"],
            "accuracy_source": "photo level, held-out test split of the shared gan_faces (FFHQ real, StyleGAN fake); "
            "see models/README.md",
            "test": reports["test"]["overall"],
            "carry_over": {name: report["overall"] for name, report in reports.items() if name != "test"},
            "validation": checkpoint.metrics,
        }
        checkpoint.origin = {**checkpoint.origin, "built_by": "manage.py build_photo_model"}
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = save_checkpoint(checkpoint, target)
        self.stdout.write(f"Installed {target} ({target.stat().st_size / 1e6:.1f} MB, sha256 {sha[:12]}...)")


def _outcomes(report: dict[str, Any], label: str) -> str:
    row = report.get("outcomes", {}).get(label)
    return f"{row['FAKE']} / {row['INCONCLUSIVE']} / {row['REAL']}" if row else "n/a"


def card_table(reports: dict[str, dict[str, Any]]) -> str:
    """The card's table: per evaluation set, the photo (or video) level figures and the app's three outcomes."""
    lines = [
        "| set | level | real / fake | accuracy | AUC | EER | Brier | real: FAKE / INCONCLUSIVE / REAL "
        "| fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in reports.items():
        metrics = report["overall"]["video"]
        (tn, fp), (fn, tp) = metrics["confusion"]
        lines.append(
            f"| {name} | {'photo' if name == 'test' else 'video'} | {tn + fp} / {fn + tp} | "
            f"{_fmt(metrics.get('accuracy'))} | {_fmt(metrics.get('auc'))} | {_fmt(metrics.get('eer'))} | "
            f"{_fmt(metrics.get('brier'))} | {_outcomes(report, 'REAL')} | {_outcomes(report, 'FAKE')} |"
        )
    return "\n".join(lines)
