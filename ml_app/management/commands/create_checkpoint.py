"""``manage.py create_checkpoint``: an untrained checkpoint, to try the pipeline and to benchmark it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.checkpoint_lookup import choose_checkpoint
from ml_app.detection.checkpoints import new_checkpoint, save_checkpoint
from ml_app.detection.defaults import FRAME_MODEL_LENGTH
from ml_app.detection.errors import DetectionError, NoCheckpointForLength
from ml_app.detection.network import BACKBONES, ModelConfig, backbone_preprocessing
from ml_app.detection.preprocessing import (
    DETECTOR_BACKENDS,
    DETECTOR_MODEL_CHOICES,
    DetectorSettings,
    Preprocessing,
    detector_flag_help,
)


class Command(BaseCommand):
    help = (
        "Write a checkpoint with an untrained LSTM and classifier (the backbone starts from ImageNet weights when "
        "torchvision's cache or --pretrained has them, randomly otherwise). Its verdicts mean nothing: it exists "
        "to try and benchmark the pipeline. Results made with it say so."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sequence-length",
            type=int,
            default=settings.DEFAULT_SEQUENCE_LENGTH,
            help="frames per window; 1 makes a frame model (no LSTM), for photos",
        )
        parser.add_argument("--backbone", choices=sorted(BACKBONES), default="resnext50_32x4d")
        parser.add_argument("--hidden-size", type=int, default=None, help="LSTM size (default: backbone features)")
        parser.add_argument("--image-size", type=int, default=112)
        parser.add_argument("--margin", type=float, default=0.25)
        detector_help = detector_flag_help()
        parser.add_argument("--detector-backend", choices=DETECTOR_BACKENDS, help=detector_help["detector_backend"])
        parser.add_argument("--detector-model", choices=DETECTOR_MODEL_CHOICES, help=detector_help["detector_model"])
        parser.add_argument(
            "--pretrained", default="imagenet", help="imagenet (torchvision's cache only), random, or a weights file"
        )
        parser.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")
        parser.add_argument("--output", help="default: models/untrained_<backbone>_<N>_frames.pt")
        parser.add_argument("--force", action="store_true", help="overwrite an existing file")
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing when this sequence length has a checkpoint already (active in the registry, named in "
            "MODEL_MAPPING or in the models folder)",
        )

    def handle(self, *args, **options) -> None:
        length = options["sequence_length"]
        backbone = options["backbone"]
        if options["if_missing"]:
            try:
                existing = choose_checkpoint(length)
            except NoCheckpointForLength:
                existing = None
            if existing is not None:
                self.stdout.write(f"A checkpoint for {length} frames exists: {existing.path} ({existing.reason})")
                return
        output = Path(options["output"] or settings.MODELS_DIR / f"untrained_{backbone}_{length}_frames.pt")
        if output.exists() and not options["force"]:
            raise CommandError(f"'{output}' exists; pass --force to overwrite it.")
        try:
            if length == FRAME_MODEL_LENGTH:  # a frame model, for photos: no LSTM
                architecture = ModelConfig(backbone=backbone, head="frame")
            else:
                architecture = ModelConfig(backbone=backbone, hidden_size=options["hidden_size"] or BACKBONES[backbone])
            preprocessing = Preprocessing(
                detector=DetectorSettings(
                    backend=options["detector_backend"] or "", model=options["detector_model"] or ""
                ),
                image_size=options["image_size"],
                margin=options["margin"],
            )
            preprocessing = backbone_preprocessing(preprocessing, backbone)  # the normalisation its weights expect
            checkpoint = new_checkpoint(
                architecture, preprocessing, length, pretrained=options["pretrained"], name=output.stem
            )
        except (ValueError, DetectionError) as exc:
            raise CommandError(" ".join(str(getattr(exc, "message", exc)).split())) from exc
        sha = save_checkpoint(checkpoint, output, half=options["half"])
        self.stdout.write(
            f"Wrote untrained checkpoint '{output}' ({backbone}, {length} frames, backbone init "
            f"{checkpoint.training['backbone_init']}, sha256 {sha[:12]}…). Its verdicts mean nothing."
        )
