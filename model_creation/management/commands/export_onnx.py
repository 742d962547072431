"""``manage.py export_onnx CHECKPOINT``: an ONNX file that onnxruntime runs, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.errors import DetectionError
from model_creation.training.options import one_line


class Command(BaseCommand):
    help = (
        "Export a checkpoint to ONNX (dynamic batch and time axes) with its settings in the file's metadata. The "
        "file is written only if onnxruntime's outputs match PyTorch's within --tolerance. Use it with "
        "'analyze_video --checkpoint FILE.onnx' or a MODEL_MAPPING entry."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("checkpoint", help="a .pt checkpoint")
        parser.add_argument("--output", help="default: the checkpoint's path with .onnx")
        parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed difference (1e-4)")
        parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
        parser.add_argument("--force", action="store_true", help="overwrite an existing file")

    def handle(self, *args, **options) -> None:
        from model_creation.training.onnx_export import ExportError, export_onnx

        checkpoint = Path(options["checkpoint"])
        output = Path(options["output"]) if options["output"] else checkpoint.with_suffix(".onnx")
        if output.exists() and not options["force"]:
            raise CommandError(f"'{output}' exists; pass --force to overwrite it.")
        if options["tolerance"] <= 0:
            raise CommandError("--tolerance must be positive.")
        try:
            result = export_onnx(checkpoint, output, options["tolerance"], options["opset"])
        except (DetectionError, ExportError) as exc:
            raise CommandError(one_line(exc)) from exc
        self.stdout.write(
            f"Wrote {result.path}: onnxruntime matches PyTorch within {result.max_logit_difference:.1e} (logits) "
            f"and {result.max_probability_difference:.1e} (probabilities); tolerance {result.tolerance:.0e}."
        )
