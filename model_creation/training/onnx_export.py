"""Export a checkpoint to ONNX, with its settings as metadata, and prove the file computes what PyTorch computes.

The network is exported with dynamic batch and time axes (TorchScript-based exporter, opset 17: no extra packages).
The checkpoint's description (no weights) goes into ``metadata_props`` under ``deepfake_checkpoint``, which
``ml_app.detection.onnx_model`` reads at inference. Parity is checked with onnxruntime on two random batches of
different sizes (for a frame model also on a longer window: it averages any number of frames); the default
tolerance, 1e-4 on logits and probabilities, is far above float32 rounding (~1e-6) and far below anything that could
change a verdict.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ml_app.detection.checkpoints import FORMAT, FORMAT_VERSION, build_model, load_checkpoint
from ml_app.detection.files import atomic_write
from ml_app.detection.onnx_model import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, OnnxModel

from .metrics import json_safe

DEFAULT_TOLERANCE = 1e-4


class ExportError(ValueError):
    pass


@dataclass
class ExportResult:
    path: Path
    max_logit_difference: float
    max_probability_difference: float
    tolerance: float
    batches: list[tuple[int, ...]]


def checkpoint_metadata(checkpoint) -> str:
    """The checkpoint's payload without weights, as JSON: what ``checkpoint_from_payload`` needs to rebuild it."""
    payload = checkpoint.to_payload()
    payload.pop("state_dict")
    payload.update(format=FORMAT, format_version=FORMAT_VERSION, source_sha256=checkpoint.sha256)
    return json.dumps(json_safe(payload), default=str)


def parity(model: torch.nn.Module, onnx_model: OnnxModel, shapes: list[tuple[int, ...]], seed: int = 0):
    """Largest differences in logits and in softmax probabilities between PyTorch and onnxruntime."""
    generator = torch.Generator().manual_seed(seed)
    logit_difference = probability_difference = 0.0
    for shape in shapes:
        clips = torch.randn(shape, generator=generator)
        with torch.inference_mode():
            expected = model(clips).float()
        got = onnx_model(clips)
        logit_difference = max(logit_difference, float((expected - got).abs().max()))
        probability_difference = max(probability_difference, float((expected.softmax(1) - got.softmax(1)).abs().max()))
    return logit_difference, probability_difference


def export_onnx(
    checkpoint_path: str | os.PathLike, output: str | os.PathLike, tolerance: float = DEFAULT_TOLERANCE, opset: int = 17
) -> ExportResult:
    """Write ``output`` (atomically) once it matches the checkpoint within ``tolerance``; ExportError otherwise."""
    import onnx

    checkpoint = load_checkpoint(checkpoint_path)
    model = build_model(checkpoint).float().eval()
    size, length = checkpoint.preprocessing.image_size, checkpoint.sequence_length
    example = torch.zeros(2, length, 3, size, size)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    shapes: list[tuple[int, ...]] = [(2, length, 3, size, size), (3, length, 3, size, size)]
    if checkpoint.architecture.is_frame_model:  # it scores windows of several frames too: check a longer one
        shapes.append((2, length + 3, 3, size, size))
    differences: list[float] = []

    def write(temporary: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch-size notes
            torch.onnx.export(
                model,
                (example,),
                str(temporary),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch", 1: "time"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
            )
        exported = onnx.load(str(temporary))
        entry = exported.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, checkpoint_metadata(checkpoint)
        head = "frame model" if checkpoint.architecture.is_frame_model else "LSTM"
        exported.doc_string = f"Deepfake detector {checkpoint.name} ({checkpoint.architecture.backbone} + {head})"
        onnx.save(exported, str(temporary))
        logits, probabilities = parity(model, OnnxModel(temporary), shapes)
        differences.extend((logits, probabilities))
        if not (np.isfinite(logits) and logits <= tolerance and probabilities <= tolerance):
            raise ExportError(
                f"The ONNX model differs from PyTorch by {logits:.2e} in logits and {probabilities:.2e} in "
                f"probabilities, above the tolerance {tolerance:.0e}; the file was not written."
            )

    atomic_write(output, write)
    logits, probabilities = differences
    return ExportResult(output, logits, probabilities, tolerance, shapes)
