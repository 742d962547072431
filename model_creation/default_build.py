"""Recipe 2 of ``build_default_model``: every shared video, candidates measured, leave-one-source-out, install.

Each step is one of the project's own commands (``preprocess_videos``, ``train_model``, ``evaluate_model``), run as
a user would run it; a step whose outputs are already in the work folder, made with the same settings, is reused,
so an interrupted rebuild continues and a rebuild of the card's tables costs nothing. What is chosen and why is
:mod:`model_creation.training.default_recipe`'s; the data and splits are :mod:`model_creation.training.default_data`'s.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from model_creation.build_commands import BuildCommand
from model_creation.training.default_card import card_tables
from model_creation.training.default_data import dataset_rows, photo_rows, write_dataset_csv
from model_creation.training.default_recipe import (
    BACKBONE_CANDIDATES,
    CHOICE_MARGIN,
    CLIP_FRAMES,
    DATASET,
    FIXED,
    PHOTOS,
    RECIPE,
    Candidate,
    choose,
    experiment_manifest,
    experiments,
    final_frame_candidate,
    sequence_candidates,
)
from model_creation.training.default_recipe import SEQUENCE_CLIPS_PER_VIDEO as CLIPS_PER_VIDEO

DETECTOR = "centerface"


class RecipeTwo:
    """One rebuild: ``run()`` preprocesses, trains and tests every candidate and experiment, installs the chosen."""

    def __init__(self, command: BuildCommand, options: dict[str, Any]) -> None:
        self.command, self.options = command, options
        self.data, self.work = Path(options["data"]).resolve(), Path(options["work"])
        self.say = command.stdout.write

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        photos = PHOTOS if self.options.get("photos") is None else self.options["photos"]
        if photos < 0:
            raise CommandError(f"--photos must be 0 (none) or a number of photos, not {photos}.")
        try:
            rows = dataset_rows(self.data)
            photo_csv = write_dataset_csv(photo_rows(self.data, photos), self.work / "photos.csv") if photos else None
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        dataset_csv = write_dataset_csv(rows, self.work / "dataset.csv")
        # the fixed test split on its own, for evaluating any checkpoint on it with its own settings
        # (evaluate_model CHECKPOINT --videos test_videos.csv --layout csv); the card measured recipe 1's files so
        write_dataset_csv([row for row in rows if row.split == "test"], self.work / "test_videos.csv")
        wanted = self.options["backbones"]
        backbones = [c for c in BACKBONE_CANDIDATES if not wanted or c.key in wanted]
        if not backbones:
            raise CommandError(f"--backbones names none of {', '.join(c.key for c in BACKBONE_CANDIDATES)}.")
        sizes = sorted({c.image_size for c in backbones})
        manifests = {size: self._preprocess(dataset_csv, size) for size in sizes}
        self.photos = {size: self._preprocess_photos(photo_csv, size) for size in sizes} if photo_csv else {}
        report: dict[str, Any] = {
            "recipe": RECIPE,
            "data": str(self.data),
            "photos": photos,
            "candidates": {},
            "loso": {},
        }
        for candidate in backbones:
            report["candidates"][candidate.key] = self._train_and_test(candidate, FIXED, manifests)
        validated = {key: run["validation"].get("auc", float("nan")) for key, run in report["candidates"].items()}
        seconds = {key: run["train_seconds"] for key, run in report["candidates"].items()}
        chosen = next(c for c in backbones if c.key == choose(validated, seconds))
        report["chosen_backbone"] = chosen.to_dict()
        self.say(
            f"Chosen by validation AUC, a costlier candidate only by more than {CHOICE_MARGIN} and within the "
            f"training budget: {chosen.backbone} at {chosen.image_size} px."
        )
        # leave one source out: the chosen candidate at the screening budget, retrained without each source, to set
        # against its fixed-split row (a sequence model starts from a frame model trained on every source, so only
        # the frame stage can be held out honestly)
        for experiment in experiments()[1:] if not self.options["no_loso"] else []:
            report["loso"][experiment] = self._train_and_test(chosen, experiment, manifests)
        report["loso_candidate"] = chosen.key
        final = final_frame_candidate(chosen)
        report["candidates"][final.key] = self._train_and_test(final, FIXED, manifests)
        self.frame_model = Path(report["candidates"][final.key]["run_dir"]) / "best.pt"
        sequences = sequence_candidates(chosen, sorted(set(self.options["lengths"])))
        for candidate in sequences:
            report["candidates"][candidate.key] = self._train_and_test(candidate, FIXED, manifests)
        if not self.options["no_install"]:
            report["installed"] = [self._install(c, report["candidates"][c.key]) for c in sequences]
        report["this_run_seconds"] = time.perf_counter() - started
        (self.work / "build.json").write_text(json.dumps(report, indent=2, default=str))
        tables = card_tables(report)
        (self.work / "card_table.md").write_text(tables + "\n")
        self.say(tables)
        self.say(f"Report: {self.work / 'build.json'}; this run took {report['this_run_seconds'] / 60:.1f} min.")
        return report

    # --- steps ------------------------------------------------------------------------------------------------------

    def _preprocess(self, dataset_csv: Path, size: int) -> Path:
        frames = ("--sequence-length", CLIP_FRAMES, "--windows", self.options["windows"])
        return self._crop("preprocess_videos", dataset_csv, self.work / f"clips_{size}", DATASET, size, *frames)

    def _preprocess_photos(self, photo_csv: Path, size: int) -> Path:
        """The FFHQ photos' faces, found and cropped exactly as the videos' (one detector, margin and size)."""
        return self._crop("preprocess_images", photo_csv, self.work / f"photos_{size}", "ffhq", size)

    def _crop(self, command: str, csv_file: Path, folder: Path, dataset: str, size: int, *more: Any) -> Path:
        """One preprocessing step: the faces of ``csv_file``'s rows found by the recipe's detector, cropped to
        ``size`` px into ``folder``; its manifest."""
        self.say(f"Preprocessing {csv_file} into {folder} ({size} px crops, faces found by {DETECTOR}) ...")
        self.command._run(
            command,
            csv_file,
            *("--layout", "csv", "--dataset", dataset, "--output", folder, "--image-size", size, *more),
            *("--detector-backend", DETECTOR, "--workers", max(1, self.options["workers"]), "--no-progress"),
        )
        return folder / "manifest.json"

    def _train_and_test(self, candidate: Candidate, experiment: str, manifests: dict[int, Path]) -> dict[str, Any]:
        """Train one candidate in one experiment and test it, or reuse the run that did exactly that."""
        name = candidate.key if experiment == FIXED else f"{candidate.key}__{experiment}"
        run_dir = self.work / "runs" / name
        manifest = test_manifest = manifests[candidate.image_size]
        clips = CLIPS_PER_VIDEO.get(candidate.length, 0)
        if experiment != FIXED or clips:
            manifest = experiment_manifest(manifest, experiment, self.work / "manifests" / f"{name}.json", clips)
            test_manifest = manifest
        settings = {
            "recipe": RECIPE,
            "candidate": candidate.to_dict(),
            "experiment": experiment,
            "manifest": _fingerprint(manifest),
            "starts_from": _fingerprint(self.frame_model) if candidate.length > 1 else None,
            **({"extra_train": _fingerprint(photos)} if (photos := self._photos_for(candidate)) else {}),
            "seed": self.options["seed"],
            "epochs": self.options["epochs"],
        }
        done = run_dir / "recipe.json"
        finished = done.is_file() and (run_dir / "test" / "report.json").is_file()
        if not (finished and json.loads(done.read_text()) == settings):
            self.say(f"Training {name} ({self.options['epochs'] or candidate.epochs} epochs at most) ...")
            extra = ("--extra-train", photos) if photos else ()
            self.command._run("train_model", *self._train_args(candidate, manifest, run_dir, name), *extra)
            self.say(f"Testing {name} ...")
            self.command._run(
                "evaluate_model",
                run_dir / "best.pt",
                *("--manifest", test_manifest, "--split", "test", "--output", run_dir / "test", "--no-progress"),
            )
            done.write_text(json.dumps(settings, indent=2))
        else:
            self.say(f"Reusing {run_dir} (the same candidate, data and seed).")
        summary = _run_summary(run_dir, candidate, experiment)
        video = summary["test"]["overall"]["video"]
        self.say(
            f"  {name}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
            f"{summary['train_seconds'] / 60:.1f} min, "
            f"validation AUC {summary['validation'].get('auc', float('nan')):.3f}; "
            f"test: {video.get('n')} videos, AUC {video.get('auc', float('nan')):.3f}, "
            f"accuracy {video.get('accuracy', float('nan')):.3f}"
        )
        return summary

    def _photos_for(self, candidate: Candidate) -> Path | None:
        """The photo manifest a candidate also trains on: a frame model's, when the recipe takes photos."""
        return self.photos.get(candidate.image_size) if candidate.length == 1 else None

    def _train_args(self, candidate: Candidate, manifest: Path, run_dir: Path, name: str) -> list[Any]:
        args: list[Any] = [
            *("--manifest", manifest, "--output", run_dir, "--force", "--name", name),
            *("--backbone", candidate.backbone, "--pretrained", self._pretrained(candidate)),
            *("--synthesize-fakes", "sbi", "--reencode", "--val-fraction", "0.2"),
            *("--epochs", self.options["epochs"] or candidate.epochs, "--batch-size", candidate.batch_size),
            *("--lr", candidate.lr, "--seed", self.options["seed"], "--workers", self.options["workers"]),
            *("--no-progress", "--no-tensorboard"),
        ]
        if candidate.length == 1:
            return [*args, "--frame-model"]
        return [*args, "--sequence-length", candidate.length, "--hidden-size", self.options["hidden_size"]]

    def _pretrained(self, candidate: Candidate) -> str:
        """A sequence model starts from the chosen frame model's backbone; a frame model from ImageNet weights: the
        shared MobileNetV2 file, or the package that bundles EfficientNet-Lite0's."""
        if candidate.length > 1:
            return str(self.frame_model)
        if candidate.backbone == "mobilenet_v2":
            path = Path(self.options["pretrained"] or self.data / "weights" / "mobilenet_v2-b0353104.pth")
            if not path.is_file():
                raise CommandError(f"No MobileNetV2 weights at '{path}'; give --pretrained FILE.")
            return str(path)
        return "imagenet"

    def _install(self, candidate: Candidate, run: dict[str, Any]) -> str:
        from ml_app.detection.defaults import shipped_file

        target = Path(self.options["install_dir"]) / Path(shipped_file(candidate.length)).name
        self.command.install_tested(
            Path(run["run_dir"]) / "best.pt",
            target,
            run["test"],
            "video level, held-out test split of recipe 2 (whole FF++ pairs, web pairs, real clips and samples); "
            "see models/README.md",
            {"built_by": "manage.py build_default_model --recipe 2", "test_report": str(Path(run["run_dir"]) / "test")},
        )
        return str(target)


def _fingerprint(path: Path) -> str:
    """What a file holds, for telling whether a step's inputs changed: a manifest without its creation time (it is
    written again whenever preprocessing resumes), any other file as it is."""
    import hashlib

    if path.suffix == ".json":
        content = json.loads(path.read_text())
        content.pop("created_at", None)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_summary(run_dir: Path, candidate: Candidate, experiment: str) -> dict[str, Any]:
    """What the card states of one run, read back from its files."""
    train = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "history.csv", newline="") as handle:
        epochs = list(csv.DictReader(handle))
    return {
        "run_dir": str(run_dir),
        "candidate": candidate.to_dict(),
        "experiment": experiment,
        "best_epoch": train["best_epoch"],
        "epochs_run": train["epochs_run"],
        "train_seconds": sum(float(row["seconds"]) for row in epochs),
        "validation": train["best_metrics"],
        "test": json.loads((run_dir / "test" / "report.json").read_text()),
    }
