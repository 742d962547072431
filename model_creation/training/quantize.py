"""int8 exports: onnxruntime's dynamic quantization of the float ONNX export, checked against it on real clips.

``export_int8`` exports the checkpoint to float ONNX exactly as ``export_onnx`` does (and checks it against PyTorch),
quantizes that file with ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations quantized per
batch at run time; ``ops="linear"``, the default: the LSTM and the linear layers; ``"all"``: every operator it
quantizes dynamically, convolutions included: a 4x smaller file, but its ConvInteger runs far slower than float
convolutions on a CPU, see bench/README.md), then scores the clips of a validation manifest with both files and
measures how far the int8 model's fake probabilities are from the float model's: largest and mean absolute
difference per clip (raw, and calibrated when the checkpoint is), the ROC-AUC of each at clip and video level and its
change, and how many videos get another three-way call. The int8 file is written only when the largest clip
difference is within ``tolerance``; it keeps the checkpoint's settings (``deepfake_checkpoint``, so the app loads
it like any export) and gets the agreement figures under ``deepfake_quantization``, which also go to a JSON file
beside it (:func:`agreement_path`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml_app.detection.calibration import score_rule
from ml_app.detection.checkpoints import load_checkpoint
from ml_app.detection.files import atomic_write, atomic_write_text
from ml_app.detection.onnx_model import METADATA_KEY, OnnxModel

from .dataset import ClipDataset, scoring_length
from .evaluate import level_scores, score_dataset, usable_items, video_calls
from .metrics import json_safe, roc_auc
from .onnx_export import DEFAULT_TOLERANCE, ExportError, ExportResult, export_onnx

QUANTIZATION_KEY = "deepfake_quantization"
DEFAULT_INT8_TOLERANCE = 0.05
OP_SETS: dict[str, list[str] | None] = {"all": None, "linear": ["MatMul", "Gemm", "LSTM"]}
SPLITS = ("auto", "all", "train", "val", "test", "none")


class QuantizeError(ExportError):
    pass


@dataclass
class QuantizeResult:
    path: Path
    agreement_path: Path
    agreement: dict[str, Any]
    float_export: ExportResult


def agreement_path(output: str | os.PathLike) -> Path:
    """Where the agreement figures of an int8 file go: ``model.int8.onnx`` -> ``model.int8.quantization.json``."""
    return Path(output).with_suffix(".quantization.json")


def validation_items(manifest, split: str = "auto"):
    """The clips to compare on and the split used: ``auto`` = the val split when there is one, else every video."""
    if split not in SPLITS:
        raise QuantizeError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    if split == "auto":
        split = "val" if any(video.split == "val" for video in manifest.videos) else "all"
    wanted = None if split == "all" else {"" if split == "none" else split}
    items = usable_items(manifest.videos, wanted)
    if not items:
        raise QuantizeError(f"The manifest's split '{split}' has no face clip to compare the int8 model on.")
    return items, split


def _level_auc(items, scores, level: str) -> float:
    rows = level_scores(items, scores, level)
    return roc_auc([label for _, label, _ in rows], [score for _, _, score in rows])


def compare_scores(items, float_scores: np.ndarray, int8_scores: np.ndarray, checkpoint) -> dict[str, Any]:
    """Agreement figures of two score arrays over the same clips (raw fake probabilities, in item order)."""
    rule = score_rule(checkpoint.calibration)
    kinds: dict[str, tuple[list[float], list[float]]] = {
        "raw": (list(map(float, float_scores)), list(map(float, int8_scores)))
    }
    if rule.calibration is not None:
        kinds["calibrated"] = (
            list(map(float, rule.calibration.apply(float_scores))),
            list(map(float, rule.calibration.apply(int8_scores))),
        )
    figures: dict[str, Any] = {"clips": len(items), "videos": len({item.video.video_id for item in items})}
    for kind, (a, b) in kinds.items():
        difference = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
        videos_a = {key: score for key, _, score in level_scores(items, a, "video")}
        videos_b = {key: score for key, _, score in level_scores(items, b, "video")}
        figures[kind] = {
            "max_abs_difference": float(difference.max()),
            "mean_abs_difference": float(difference.mean()),
            "video_max_abs_difference": max(abs(videos_a[key] - videos_b[key]) for key in videos_a),
            "auc": {
                level: {
                    "float": _level_auc(items, a, level),
                    "int8": _level_auc(items, b, level),
                }
                for level in ("clip", "video")
            },
        }
        for auc in figures[kind]["auc"].values():
            auc["change"] = auc["int8"] - auc["float"]
    decided = kinds.get("calibrated", kinds["raw"])  # what the thresholds apply to
    calls_a = video_calls(items, decided[0], rule.thresholds)
    calls_b = video_calls(items, decided[1], rule.thresholds)
    figures["video_calls_changed"] = sum(calls_a[key] != calls_b[key] for key in calls_a)
    return figures


def quantized_operators(path: Path) -> dict[str, int]:
    """How many integer operators an ONNX file holds, per type (none: nothing was quantized)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        if node.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul"):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@contextmanager
def _quiet_quantizer():
    """onnxruntime.quantization logs a pre-processing hint on the root logger for every model."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_file(source: Path, target: Path, ops: str = "linear", per_channel: bool = False) -> None:
    """Dynamic int8 quantization of an ONNX file (weights int8, activations quantized at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if ops not in OP_SETS:
        raise QuantizeError(f"unknown operator set {ops!r}; one of {', '.join(OP_SETS)}")
    with _quiet_quantizer():
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=OP_SETS[ops],
            per_channel=per_channel,
        )


def _stamp(int8_file: Path, float_file: Path, figures: dict[str, Any], target: Path) -> None:
    """Copy the float export's settings into the int8 file (whatever the quantizer kept) and add the figures."""
    import onnx

    settings = {p.key: p.value for p in onnx.load(str(float_file)).metadata_props}[METADATA_KEY]
    model = onnx.load(str(int8_file))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in (METADATA_KEY, QUANTIZATION_KEY)]
    del model.metadata_props[:]
    for key, value in [*kept, (METADATA_KEY, settings), (QUANTIZATION_KEY, json.dumps(json_safe(figures)))]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = f"{onnx.load(str(float_file)).doc_string} (int8, dynamic quantization)"
    onnx.save(model, str(target))


def export_int8(
    checkpoint_path: str | os.PathLike,
    output: str | os.PathLike,
    manifest_path: str | os.PathLike | None,
    split: str = "auto",
    tolerance: float = DEFAULT_INT8_TOLERANCE,
    ops: str = "linear",
    per_channel: bool = False,
    float_tolerance: float = DEFAULT_TOLERANCE,
    opset: int = 17,
    batch_size: int = 8,
    max_clips: int | None = None,
) -> QuantizeResult:
    """Write an int8 ONNX model of a checkpoint at ``output`` once it agrees with the float export on the
    validation clips of ``manifest_path`` within ``tolerance`` (largest absolute difference of a clip's raw fake
    probability); QuantizeError otherwise (nothing written)."""
    from .manifest import ManifestError, load_manifest
    from .options import incompatibility

    if not manifest_path:
        raise QuantizeError(
            "An int8 model is checked against the float model on validation clips: give --manifest (a preprocess "
            "manifest made with the checkpoint's preprocessing)."
        )
    checkpoint = load_checkpoint(checkpoint_path)
    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as exc:
        raise QuantizeError(str(exc)) from exc
    problem = incompatibility(manifest, checkpoint)
    if problem:
        raise QuantizeError(problem)
    items, split_used = validation_items(manifest, split)
    if max_clips:
        items = items[:max_clips]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=output.parent) as folder:
        float_file, int8_file = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        float_export = export_onnx(checkpoint_path, float_file, float_tolerance, opset)
        quantize_file(float_file, int8_file, ops, per_channel)
        quantized = quantized_operators(int8_file)
        if not quantized:
            raise QuantizeError(
                f"--int8-ops {ops} found nothing onnxruntime quantizes in this network: try --int8-ops all."
            )
        length = scoring_length(checkpoint.architecture.is_frame_model, checkpoint.sequence_length, manifest)
        dataset = ClipDataset(manifest, items, length, preprocessing=checkpoint.preprocessing)
        cpu = torch.device("cpu")
        float_scores = score_dataset(OnnxModel(float_file), dataset, cpu, batch_size, progress=False)  # type: ignore[arg-type]
        int8_scores = score_dataset(OnnxModel(int8_file), dataset, cpu, batch_size, progress=False)  # type: ignore[arg-type]
        figures = compare_scores(items, float_scores, int8_scores, checkpoint)
        figures.update(
            method="onnxruntime dynamic quantization (int8 weights)",
            ops=ops,
            quantized_operators=quantized,
            per_channel=per_channel,
            tolerance=tolerance,
            manifest={"path": str(manifest.path), "sha256": manifest.sha256, "split": split_used},
            source_sha256=checkpoint.sha256,
            float_size_bytes=float_file.stat().st_size,
            int8_size_bytes=int8_file.stat().st_size,
        )
        largest = figures["raw"]["max_abs_difference"]
        if not (np.isfinite(largest) and largest <= tolerance):
            raise QuantizeError(
                f"The int8 model's fake probabilities differ from the float model's by up to {largest:.3g} on "
                f"{len(items)} validation clip(s), above the tolerance {tolerance:g}; nothing was written "
                "(try --int8-ops linear or --per-channel)."
            )
        atomic_write(output, lambda temporary: _stamp(int8_file, float_file, figures, temporary))
    report = agreement_path(output)
    atomic_write_text(report, json.dumps(json_safe({"model": output.name, **figures}), indent=2))
    return QuantizeResult(output, report, figures, float_export)


def describe_agreement(figures: dict[str, Any]) -> str:
    """One paragraph of the agreement figures, for the command's output."""
    lines = [f"int8 vs float on {figures['clips']} validation clip(s) of {figures['videos']} video(s):"]
    for kind in ("raw", "calibrated"):
        if kind not in figures:
            continue
        part = figures[kind]
        auc = part["auc"]
        lines.append(
            f"  {kind} fake probability: max |diff| {part['max_abs_difference']:.2e}, mean "
            f"{part['mean_abs_difference']:.2e} (videos: max {part['video_max_abs_difference']:.2e}); AUC clip "
            f"{auc['clip']['float']:.4f} -> {auc['clip']['int8']:.4f} ({auc['clip']['change']:+.4f}), video "
            f"{auc['video']['float']:.4f} -> {auc['video']['int8']:.4f} ({auc['video']['change']:+.4f})"
        )
    lines.append(
        f"  videos with another three-way call: {figures['video_calls_changed']}; size "
        f"{figures['float_size_bytes'] / 1e6:.1f} MB -> {figures['int8_size_bytes'] / 1e6:.1f} MB"
    )
    return "\n".join(lines)
