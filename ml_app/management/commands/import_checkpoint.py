"""``manage.py import_checkpoint FILE``: convert an original ResNeXt+LSTM app checkpoint into this project's format."""

from __future__ import annotations

from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.checkpoints import FORMAT, build_model, read_checkpoint_file, save_checkpoint
from ml_app.detection.errors import DetectionError
from ml_app.detection.legacy import convert_legacy_state_dict


def smoke_test(checkpoint) -> None:
    """Build the architecture with the weights and run one dummy window through it."""
    model = build_model(checkpoint)
    size = checkpoint.preprocessing.image_size
    with torch.inference_mode():
        logits = model(torch.zeros(1, checkpoint.sequence_length, 3, size, size))
    if tuple(logits.shape) != (1, 2) or not torch.isfinite(logits).all():
        raise CommandError(f"The converted model produced unusable output {tuple(logits.shape)}.")


class Command(BaseCommand):
    help = (
        "Convert a checkpoint of the original ResNeXt+LSTM app (a bare state dict such as "
        "model_87_acc_20_frames_final_data.pt) into this project's format, recording its preprocessing "
        "(BGR frames, tight 112 px crops, class 0 = FAKE) and computation, and save it in the models folder."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the original app's .pt file")
        parser.add_argument("--sequence-length", type=int, help="frames per window, if the file name does not say")
        parser.add_argument("--accuracy", type=float, help="reported accuracy in percent, if the name does not say")
        parser.add_argument("--output", help="where to write (default: the models folder, same name)")
        parser.add_argument("--force", action="store_true", help="overwrite an existing output file")

    def handle(self, *args, **options) -> None:
        source = Path(options["file"])
        try:
            payload, digest = read_checkpoint_file(source)
            if isinstance(payload, dict) and payload.get("format") == FORMAT:
                raise CommandError(f"'{source.name}' is already in this project's format; nothing to convert.")
            checkpoint = convert_legacy_state_dict(
                payload,
                source.name,
                source_sha256=digest,
                sequence_length=options["sequence_length"],
                accuracy=options["accuracy"],
            )
            smoke_test(checkpoint)
        except DetectionError as exc:
            raise CommandError(" ".join(exc.message.split())) from exc

        output = Path(options["output"]) if options["output"] else settings.MODELS_DIR / f"{source.stem}.pt"
        if output.resolve() == source.resolve():
            output = output.with_name(f"{source.stem}_converted.pt")
        if output.exists() and not options["force"]:
            raise CommandError(f"'{output}' exists; pass --force to overwrite it or --output to choose another file.")
        sha = save_checkpoint(checkpoint, output)
        accuracy = checkpoint.accuracy
        self.stdout.write(
            f"Converted '{source.name}' -> '{output}' (sha256 {sha[:12]}…): {checkpoint.sequence_length} frames, "
            + (f"reported accuracy {accuracy:.1%}, " if accuracy is not None else "")
            + "legacy preprocessing (BGR, tight 112 px crops, class 0 = FAKE) and last-frame scoring recorded."
        )
