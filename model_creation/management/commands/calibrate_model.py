"""``manage.py calibrate_model CHECKPOINT``: fit (or re-fit) a checkpoint's calibration and verdict thresholds on its
own validation data, without retraining.

By default the validation split is the one the checkpoint was trained with: its training manifest (recorded in the
checkpoint, or given with ``--manifest``) split again with the run's own settings (fraction, seed, self-blended
fakes). That gives the same clips when the manifest is the same file (its sha256 matches); a manifest made again from
the same videos is taken when the rebuilt split has exactly the clip counts per split and label that the checkpoint
records, and refused otherwise. ``--split NAME``
takes a manifest split instead (for example a calibration set held out for the purpose).

``--scores`` fits on raw scores already made by models that never saw those videos instead: the
``validation_scores.json`` of each fold of a cross-validation (``train_model --folds K --monitor none``; give its
folder) or of a held-out run. That calibration is fitted at video level with both classes weighing the same (a
50/50 prior) and its thresholds on real manipulations only, self-blended copies reported apart
(``model_creation.training.out_of_fold``): what the default model's files carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from model_creation.training.config import CALIBRATION_CHOICES, TrainConfig
from model_creation.training.options import incompatibility, one_line


class Command(BaseCommand):
    help = (
        "Fit a checkpoint's calibration (temperature, Platt or isotonic) and its FAKE / REAL thresholds on its "
        "validation clips and store them in the file (or --output). Prints the raw and calibrated Brier score and "
        "calibration error and how the validation videos are called."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("checkpoint", help="a .pt checkpoint")
        parser.add_argument("--manifest", help="the manifest to take clips from (default: the training manifest)")
        parser.add_argument(
            "--split",
            help="a manifest split to fit on (default: the training run's validation split, rebuilt)",
        )
        parser.add_argument(
            "--method", choices=[c for c in CALIBRATION_CHOICES if c != "none"], default=TrainConfig.calibration
        )
        parser.add_argument("--max-fpr", type=float, default=TrainConfig.max_fpr, help="for the FAKE threshold")
        parser.add_argument("--max-miss", type=float, default=TrainConfig.max_miss, help="for the REAL threshold")
        parser.add_argument(
            "--min-margin", type=float, default=TrainConfig.min_margin, help="thresholds at least this far from 0.5"
        )
        parser.add_argument(
            "--scores",
            nargs="+",
            metavar="PATH",
            help="fit on these held-out scores instead of scoring clips: validation_scores.json files, or a "
            "cross-validation's folder (its fold_*/validation_scores.json: out-of-fold scores of every video)",
        )
        parser.add_argument("--output", help="write the calibrated checkpoint here (default: in place)")
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        from ml_app.detection.errors import DetectionError
        from ml_app.detection.model_loading import load_detector_model
        from model_creation.training.calibrate import CalibrationError, calibrate_checkpoint_file, describe_calibration
        from model_creation.training.dataset import ClipDataset, scoring_length
        from model_creation.training.evaluate import score_dataset
        from model_creation.training.manifest import ManifestError, load_manifest

        path = Path(options["checkpoint"])
        if path.suffix != ".pt":
            raise CommandError("calibrate_model needs the .pt checkpoint (export to ONNX after calibrating).")
        if options["scores"]:
            self._from_scores(path, options)
            return
        try:
            loaded = load_detector_model(path, options["device"])
        except DetectionError as exc:
            raise CommandError(one_line(exc)) from exc
        checkpoint = loaded.checkpoint
        manifest_path = options["manifest"] or checkpoint.training.get("manifest")
        if not manifest_path:
            raise CommandError("The checkpoint does not say which manifest it was trained on; give --manifest.")
        try:
            manifest = load_manifest(manifest_path)
        except (ManifestError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        problem = incompatibility(manifest, checkpoint)
        if problem:
            raise CommandError(problem)
        items, source = self._items(checkpoint, manifest, options["split"])
        seed = int((checkpoint.training.get("config") or {}).get("seed", 0))  # the self-blended fakes' seed
        length = scoring_length(checkpoint.architecture.is_frame_model, checkpoint.sequence_length, manifest)
        dataset = ClipDataset(manifest, items, length, None, seed, checkpoint.preprocessing)
        scores = score_dataset(
            loaded.model, dataset, loaded.device, options["batch_size"], progress=not options["no_progress"]
        )
        source.update(fitted_by="manage.py calibrate_model", manifest=str(manifest.path))
        target = Path(options["output"]) if options["output"] else None
        try:
            calibration = calibrate_checkpoint_file(
                path,
                items,
                scores,
                options["method"],
                options["max_fpr"],
                options["max_miss"],
                source,
                target,
                min_margin=options["min_margin"],
            )
        except (CalibrationError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        self.stdout.write(describe_calibration(calibration))
        self.stdout.write(f"Calibrated checkpoint: {target or path}")

    def _from_scores(self, path: Path, options: dict[str, Any]) -> None:
        """Calibrate on held-out scores (out of fold) at video level with a 50/50 prior; store it in the file."""
        from model_creation.training.out_of_fold import (
            calibrate_out_of_fold,
            describe_out_of_fold,
            score_files,
            scores_of,
            store_calibration,
        )

        try:
            files = score_files([Path(p) for p in options["scores"]])
            items, raw = scores_of(files)
            source = {
                "fitted_by": "manage.py calibrate_model --scores",
                "split": "out of fold" if len(files) > 1 else "held out",
                "scores": [str(f) for f in files],
            }
            calibration = calibrate_out_of_fold(
                items, raw, options["max_fpr"], options["max_miss"], options["min_margin"], source
            )
            target = store_calibration(path, calibration, Path(options["output"]) if options["output"] else None)
        except (OSError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        self.stdout.write(describe_out_of_fold(calibration))
        self.stdout.write(f"Calibrated checkpoint: {target}")

    @staticmethod
    def _items(checkpoint, manifest, split: str | None) -> tuple[list[Any], dict[str, Any]]:
        """The clips to fit on and a record of where they come from."""
        from model_creation.training.dataset import with_self_blended
        from model_creation.training.evaluate import usable_items
        from model_creation.training.loading import items_per_split
        from model_creation.training.splits import VAL

        training = checkpoint.training
        synthesize = (training.get("config") or {}).get("synthesize_fakes") == "sbi"
        if split:
            items = usable_items(manifest.videos, {split})
            if not items:
                raise CommandError(f"The manifest has no clips in split '{split}'.")
            items = with_self_blended(items) if synthesize else items
            return items, {"split": split, "manifest_sha256": manifest.sha256}
        if not training.get("config"):
            raise CommandError("The checkpoint does not record its training run's settings; give --split.")
        try:
            config = TrainConfig(**{**training["config"], "manifest": str(manifest.path)})
            items, counts = items_per_split(config, manifest)
        except ValueError as exc:
            raise CommandError(one_line(exc)) from exc
        source = {"split": "validation", "manifest_sha256": manifest.sha256}
        if training.get("manifest_sha256") != manifest.sha256:
            recorded = training.get("clips")
            if counts != recorded:
                raise CommandError(
                    "This manifest is not the one the checkpoint was trained on (its sha256 differs), and splitting "
                    f"it as the run did gives other clips ({counts} instead of the recorded {recorded}), so the "
                    "run's validation split cannot be rebuilt from it; give --split NAME to fit on a split of this "
                    "manifest."
                )
            source["note"] = (
                "manifest made again from the same videos with the same settings: the run's split rebuilt from it "
                "has the clip counts per split and label that the checkpoint records"
            )
        return items[VAL], source
