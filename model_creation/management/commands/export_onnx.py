"""``manage.py export_onnx CHECKPOINT [--quantize --manifest M]``: an ONNX file that onnxruntime runs, checked
against PyTorch (and, int8, against the float export on validation clips)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.errors import DetectionError
from model_creation.training.options import one_line


class Command(BaseCommand):
    help = (
        "Export a checkpoint to ONNX (dynamic batch and time axes) with its settings in the file's metadata. The "
        "file is written only if onnxruntime's outputs match PyTorch's within --tolerance. With --quantize, an int8 "
        "model instead (onnxruntime dynamic quantization), written only if its fake probabilities on the clips of "
        "--manifest agree with the float model's within --int8-tolerance; the figures go into its metadata and a "
        ".quantization.json file beside it. Use it with 'analyze_video --checkpoint FILE.onnx' or a MODEL_MAPPING "
        "entry."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        from model_creation.training.quantize import DEFAULT_INT8_TOLERANCE, OP_SETS, SPLITS

        parser.add_argument("checkpoint", help="a .pt checkpoint")
        parser.add_argument("--output", help="default: the checkpoint's path with .onnx (.int8.onnx with --quantize)")
        parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed difference (1e-4)")
        parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
        parser.add_argument("--force", action="store_true", help="overwrite an existing file")
        int8 = parser.add_argument_group("int8")
        int8.add_argument("--quantize", action="store_true", help="write an int8 model (dynamic quantization)")
        int8.add_argument("--manifest", help="validation clips the int8 model is compared on (needed with --quantize)")
        int8.add_argument(
            "--split", choices=SPLITS, default="auto", help="manifest videos: auto = the val split if any, else all"
        )
        int8.add_argument(
            "--int8-tolerance",
            type=float,
            default=DEFAULT_INT8_TOLERANCE,
            help=f"largest allowed difference of a clip's fake probability, int8 vs float ({DEFAULT_INT8_TOLERANCE})",
        )
        int8.add_argument(
            "--int8-ops",
            choices=list(OP_SETS),
            default="linear",
            help="linear (default): the LSTM and linear layers; all: convolutions too (4x smaller, slower on CPUs)",
        )
        int8.add_argument("--per-channel", action="store_true", help="one weight scale per output channel")
        int8.add_argument("--max-clips", type=int, help="compare on at most this many clips (default: all)")
        int8.add_argument("--batch-size", type=int, default=8)

    def handle(self, *args, **options) -> None:
        from model_creation.training.onnx_export import ExportError, export_onnx

        checkpoint = Path(options["checkpoint"])
        default = checkpoint.with_suffix(".int8.onnx" if options["quantize"] else ".onnx")
        output = Path(options["output"]) if options["output"] else default
        if output.exists() and not options["force"]:
            raise CommandError(f"'{output}' exists; pass --force to overwrite it.")
        if options["tolerance"] <= 0 or options["int8_tolerance"] <= 0:
            raise CommandError("--tolerance and --int8-tolerance must be positive.")
        if options["manifest"] and not options["quantize"]:
            raise CommandError("--manifest is for --quantize (the float export is checked on random inputs).")
        try:
            if options["quantize"]:
                self._quantize(checkpoint, output, options)
                return
            result = export_onnx(checkpoint, output, options["tolerance"], options["opset"])
        except (DetectionError, ExportError) as exc:
            raise CommandError(one_line(exc)) from exc
        self.stdout.write(
            f"Wrote {result.path}: onnxruntime matches PyTorch within {result.max_logit_difference:.1e} (logits) "
            f"and {result.max_probability_difference:.1e} (probabilities); tolerance {result.tolerance:.0e}."
        )

    def _quantize(self, checkpoint: Path, output: Path, options) -> None:
        from model_creation.training.quantize import describe_agreement, export_int8

        result = export_int8(
            checkpoint,
            output,
            options["manifest"],
            split=options["split"],
            tolerance=options["int8_tolerance"],
            ops=options["int8_ops"],
            per_channel=options["per_channel"],
            float_tolerance=options["tolerance"],
            opset=options["opset"],
            batch_size=options["batch_size"],
            max_clips=options["max_clips"],
        )
        self.stdout.write(
            f"Float export matches PyTorch within {result.float_export.max_probability_difference:.1e} (probabilities)."
        )
        self.stdout.write(describe_agreement(result.agreement))
        self.stdout.write(
            f"Wrote {result.path} (int8, within the tolerance {options['int8_tolerance']:g}) and "
            f"{result.agreement_path}."
        )
