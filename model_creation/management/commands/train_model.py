"""``manage.py train_model --manifest M --output DIR``: train a detector on preprocessed clips.

Multi-GPU / multi-node: start it with torchrun, e.g. ``torchrun --standalone --nproc_per_node=4 manage.py train_model
...``; see the README ("Train your own model").
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.network import BACKBONE_NAMES
from model_creation.registering import register_checkpoint, register_folds
from model_creation.training.config import (
    BALANCE_CHOICES,
    CALIBRATION_CHOICES,
    DEVICE_CHOICES,
    SYNTHESIZE_CHOICES,
    train_defaults,
)
from model_creation.training.options import one_line
from model_creation.training.run_setup import architecture_of, is_checkpoint_file, trainer_length
from model_creation.training.train_flags import add_fold_flags, add_photo_flags, add_schedule_flags, check_flags

# Every flag's value is None unless given, so that a resumed run can tell what the user changed; the defaults (and
# the choices) are TrainConfig's, in model_creation/training/config.py.
DEFAULTS: dict[str, Any] = train_defaults()


def _default(name: str) -> str:
    """A TrainConfig default as the help text shows it."""
    value = DEFAULTS[name]
    return f"{value:g}" if isinstance(value, float) else str(value)


class Command(BaseCommand):
    help = (
        "Train a CNN + LSTM detector, or a frame model (--frame-model: CNN + linear, one frame at a time, for "
        "photos and videos), on a preprocess manifest of videos or photos. Writes last.pt every epoch and best.pt "
        "(best validation AUC, or --monitor) in the app's checkpoint format, train_state.pt for --resume, "
        "history.csv, TensorBoard logs and PNG plots; --folds K cross-validates. Runs under torchrun for several GPUs "
        "or machines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--manifest", help="manifest.json from preprocess_videos or merge_manifests")
        parser.add_argument("--output", required=True, help="folder for checkpoints, logs and plots")
        model = parser.add_argument_group("model")
        model.add_argument("--backbone", choices=BACKBONE_NAMES, help=f"default {_default('backbone')}")
        model.add_argument("--hidden-size", type=int, help="LSTM units (default: the backbone's feature size)")
        model.add_argument("--num-layers", type=int, help=f"LSTM layers (default {_default('num_layers')})")
        model.add_argument("--bidirectional", action="store_true", default=None, help="bidirectional LSTM")
        model.add_argument("--dropout", type=float, help=f"before the classifier (default {_default('dropout')})")
        model.add_argument(
            "--sequence-length", type=int, help="frames per clip (default: the manifest's; 1 = --frame-model)"
        )
        model.add_argument(
            "--frame-model",
            action="store_true",
            default=None,
            help="a frame model: no LSTM, sequence length 1; from an image manifest, or one random frame per video "
            "clip and epoch (validated on whole clips, their frames' mean probability)",
        )
        model.add_argument(
            "--pretrained",
            help=f"imagenet (the backbone's local weights: torchvision's cache, or the package that bundles them; "
            f"random when there are none), random, or a backbone weights file (default {_default('pretrained')})",
        )
        optimisation = parser.add_argument_group("optimisation")
        optimisation.add_argument("--epochs", type=int, help=f"default {_default('epochs')}")
        optimisation.add_argument(
            "--batch-size", type=int, help=f"clips per step and process (default {_default('batch_size')})"
        )
        optimisation.add_argument("--lr", type=float, help=f"peak learning rate (default {_default('lr')})")
        optimisation.add_argument("--weight-decay", type=float, help=f"default {_default('weight_decay')}")
        optimisation.add_argument(
            "--warmup-epochs",
            type=float,
            help=f"linear warm-up before any --scheduler, which starts when it ends (default "
            f"{_default('warmup_epochs')})",
        )
        add_schedule_flags(optimisation, _default)
        optimisation.add_argument(
            "--patience",
            type=int,
            help=f"stop after this many epochs without a better --monitor metric (default {_default('patience')})",
        )
        optimisation.add_argument(
            "--balance",
            choices=BALANCE_CHOICES,
            help=f"class balance: loss weights, sampler or none (default {_default('balance')})",
        )
        optimisation.add_argument("--no-augment", action="store_true", default=None, help="no augmentation")
        optimisation.add_argument(
            "--reencode",
            action="store_true",
            default=None,
            help="augmentation also re-encodes clips with H.264, VP9 or MJPEG at a random quality and downscales "
            "some, so that a container change does not flip the verdict",
        )
        optimisation.add_argument("--no-amp", action="store_true", default=None, help="no mixed precision on CUDA")
        data = parser.add_argument_group("data")
        data.add_argument(
            "--synthesize-fakes",
            choices=SYNTHESIZE_CHOICES,
            help="sbi: add a self-blended fake of every real clip (works with or without labelled fakes)",
        )
        data.add_argument(
            "--extra-train",
            action="append",
            metavar="MANIFEST",
            help="more training clips of the same crops (face photos, say); training only, self-blended too",
        )
        add_photo_flags(data, _default)
        data.add_argument(
            "--val-fraction",
            type=float,
            help=f"clips per class for validation when split by group (default {_default('val_fraction')})",
        )
        data.add_argument(
            "--ignore-manifest-split",
            action="store_true",
            default=None,
            help="split by group even when the dataset gives its own split",
        )
        data.add_argument("--workers", type=int, help=f"data loading processes (default {_default('workers')})")
        add_fold_flags(parser.add_argument_group("cross-validation"))
        calibration = parser.add_argument_group("calibration (fitted on the validation split after training)")
        calibration.add_argument(
            "--calibration",
            choices=CALIBRATION_CHOICES,
            help=f"temperature, platt, isotonic, auto (isotonic with enough clips, else platt) or none (default "
            f"{_default('calibration')})",
        )
        calibration.add_argument(
            "--max-fpr",
            type=float,
            help=f"FAKE threshold: at most this share of validation real videos called FAKE (default "
            f"{_default('max_fpr')})",
        )
        calibration.add_argument(
            "--max-miss",
            type=float,
            help=f"REAL threshold: at most this share of validation fake videos called REAL (default "
            f"{_default('max_miss')})",
        )
        calibration.add_argument(
            "--min-margin",
            type=float,
            help=f"the thresholds stay at least this far from 0.5 (default {_default('min_margin')})",
        )
        run = parser.add_argument_group("running")
        run.add_argument("--seed", type=int, help=f"default {_default('seed')}")
        run.add_argument("--device", choices=DEVICE_CHOICES, help=f"default {_default('device')}")
        run.add_argument("--name", help="checkpoint name (default <backbone>_<N>_frames_<date>)")
        run.add_argument(
            "--resume",
            nargs="?",
            const="",
            metavar="FILE",
            help="continue from OUTPUT/train_state.pt (or FILE, a train_state.pt); FILE may also be a checkpoint "
            "(best.pt, last.pt, epoch_NNN.pt): a new run that starts from its weights (fine-tuning; its optimiser "
            "state is not restored)",
        )
        run.add_argument("--keep-every-epoch", action="store_true", default=None, help="also keep epoch_NNN.pt")
        run.add_argument("--force", action="store_true", help="start anew in an output folder that holds a run")
        run.add_argument(
            "--register",
            action="store_true",
            help="copy best.pt into the models folder and add it to the site's checkpoint registry",
        )
        run.add_argument(
            "--activate", action="store_true", help="with --register: make it the active checkpoint for its length"
        )
        run.add_argument("--no-progress", action="store_true", default=None, help="no progress bars")
        run.add_argument("--no-tensorboard", action="store_true", default=None, help="no TensorBoard logs")

    def handle(self, *args, **options) -> None:
        if options["activate"] and not options["register"]:
            raise CommandError("--activate needs --register (it activates the registered copy).")
        from model_creation.training.cross_validation import read_plan
        from model_creation.training.manifest import ManifestError
        from model_creation.training.trainer import STATE_FILE, Trainer, TrainError

        is_main = int(os.environ.get("RANK", "0")) == 0
        output = Path(options["output"])
        given = self._given(options)
        resume: Path | None = None
        folds = options["folds"] or (
            options["resume"] == "" and not (output / STATE_FILE).exists() and read_plan(output) is not None
        )
        try:
            if folds:
                self._cross_validate(options, given, output, is_main)
                return
            if options["resume"] is not None and not is_checkpoint_file(options["resume"]):
                resume = Path(options["resume"]) if options["resume"] else output / STATE_FILE
                config = self._resumed_config(resume, given, output)
            else:
                if options["resume"]:  # a checkpoint: its architecture, unless given, and its weights to start from
                    given = {**architecture_of(Path(options["resume"]), given), **given}
                config = self._new_config(options, given, output)
            check_flags(given, config.scheduler, options)
            if options["register"] and (Path(settings.MODELS_DIR) / f"{config.name}.pt").exists():
                raise CommandError(
                    f"A checkpoint named '{config.name}' is in the models folder; choose another --name."
                )
            result = Trainer(config, say=self.stdout.write if is_main else None, resume=resume).run()
        except (TrainError, ManifestError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        if not is_main:
            return
        self.stdout.write(
            f"Best epoch {result.best_epoch}: validation AUC {_fmt(result.best_metrics.get('auc'))}, accuracy "
            f"{_fmt(result.best_metrics.get('accuracy'))}, video AUC {_fmt(result.best_metrics.get('video_auc'))}"
            + (" (stopped early)" if result.stopped_early else "")
        )
        self.stdout.write(f"Checkpoint: {result.best_path}")
        if options["register"] and result.best_path:
            target, note = register_checkpoint(result.best_path, config.name, activate=options["activate"])
            self.stdout.write(f"Registered: {target} ({note})")

    def _cross_validate(self, options: dict[str, Any], given: dict[str, Any], output: Path, is_main: bool) -> None:
        """--folds K: one ordinary run per fold (resumed where it has a train_state.pt), then the report."""
        from model_creation.training import cross_validation as cv
        from model_creation.training.trainer import STATE_FILE, Trainer

        base = self._fold_base(options, given, output)
        say = self.stdout.write if is_main else (lambda message: None)
        table = cv.plan_folds(base)
        say(
            f"{base.folds} folds by group; validation clips per fold: "
            + "; ".join(f"{k}: {v}" for k, v in table.items())
        )
        if is_main:
            cv.write_plan(base, table)
        results = []
        for planned in cv.fold_configs(base):
            state = Path(planned.output) / STATE_FILE
            resume = state if options["resume"] is not None and state.is_file() else None
            config = self._resumed_config(state, given, Path(planned.output)) if resume else planned
            say(f"--- fold {config.fold} of {config.folds}: {config.output} ---")
            results.append(Trainer(config, say=say if is_main else None, resume=resume).run())
        if not is_main:
            return
        name = options["keep_ensemble"] or ""
        data = cv.report(base, results, name)
        if options["register"]:
            data["registered"] = register_folds(results, base.name, name, options["activate"], say)
        cv.write_json(output / cv.REPORT_FILE, data)
        say(cv.describe(data) + f"\nReport: {output / cv.REPORT_FILE}")
        if name:
            mapping = json.dumps(data["ensemble"]["model_mapping"])
            say(f"Ensemble '{name}' of the {len(results)} best.pt files; its MODEL_MAPPING entry:\n{mapping}")

    def _fold_base(self, options: dict[str, Any], given: dict[str, Any], output: Path):
        """The settings every fold shares: a new cross-validation's, or the plan of the one being resumed."""
        from model_creation.training.cross_validation import REPORT_FILE, read_plan

        plan = read_plan(output)
        if options["resume"] is not None:
            if plan is None:
                raise CommandError(f"Nothing to resume: '{output / REPORT_FILE}' does not exist.")
            base = self._resumed_settings(plan["config"], given, output)
        elif plan is not None and not options["force"]:
            raise CommandError(f"'{output}' holds a cross-validation: pass --resume, --force or another --output.")
        else:
            base = self._new_config(options, given, output)
        check_flags(given, base.scheduler, {**options, "folds": base.folds})
        return base

    @staticmethod
    def _new_config(options: dict[str, Any], given: dict[str, Any], output: Path):
        from model_creation.training.trainer import STATE_FILE, TrainConfig

        if (output / STATE_FILE).exists() and not options["force"]:
            raise CommandError(
                f"'{output}' already holds a training run: pass --resume to continue it, --force to start "
                "anew there, or choose another --output."
            )
        if not options["manifest"]:
            raise CommandError("--manifest is required (the manifest.json written by preprocess_videos).")
        values = {**DEFAULTS, **given, "manifest": options["manifest"], "output": str(output)}
        config = TrainConfig(**values)
        if not config.name:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            frames = "frame" if config.frame_model else f"{trainer_length(config)}_frames"
            config.name = f"{config.backbone}_{frames}_{stamp}"
        return config

    @staticmethod
    def _given(options: dict[str, Any]) -> dict[str, Any]:
        """The TrainConfig values the user set on the command line."""
        from model_creation.training.trainer import TrainConfig

        names = {f.name for f in fields(TrainConfig)}
        renamed = {
            "no_augment": ("augment", False),
            "no_amp": ("amp", False),
            "ignore_manifest_split": ("use_manifest_split", False),
            "no_progress": ("progress", False),
            "no_tensorboard": ("tensorboard", False),
            "no_degrade_photos": ("degrade_photos", False),
            "no_cache_crops": ("cache_crops", False),
        }
        given = {}
        for key, value in options.items():
            if value is None:
                continue
            if key in renamed:
                given[renamed[key][0]] = renamed[key][1]
            elif key in names and key not in ("manifest", "output"):
                given[key] = value
        return given

    @classmethod
    def _resumed_config(cls, state_path: Path, given: dict[str, Any], output: Path):
        import torch

        if not state_path.is_file():
            raise CommandError(f"Nothing to resume: '{state_path}' does not exist.")
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
            saved = dict(state["config"])
        except Exception as exc:
            raise CommandError(f"'{state_path}' is not a training state ({one_line(exc)[:200]}).") from exc
        return cls._resumed_settings(saved, given, output)

    @staticmethod
    def _resumed_settings(saved: dict[str, Any], given: dict[str, Any], output: Path):
        """An interrupted run's settings with the RESUMABLE ones the user gave; CommandError if others differ (a
        setting the run predates counts as its default)."""
        from model_creation.training.trainer import RESUMABLE, TrainConfig

        changed = sorted(
            key for key, value in given.items() if key not in RESUMABLE and saved.get(key, DEFAULTS.get(key)) != value
        )
        if changed:
            flags = ", ".join("--" + key.replace("_", "-") for key in changed)
            raise CommandError(
                f"A resumed run keeps the settings it started with; {flags} differ(s). Only "
                f"{', '.join('--' + k.replace('_', '-') for k in sorted(RESUMABLE))} may change."
            )
        saved.update({key: value for key, value in given.items() if key in RESUMABLE})
        saved["output"] = str(output)
        return TrainConfig(**saved)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "n/a"
