"""float vs int8 ONNX: seconds per network call, in one run, for LSTM and frame models (issue 15, part 7).

For each model (random-initialised weights, as bench_pipeline.py's; the timing does not depend on them) it exports
the float ONNX file and the int8 ones (``export_int8``: every quantizable operator, and the LSTM and linear layers
only), each checked against the float model on a small synthetic manifest, then times one window (batch 1, N frames)
through PyTorch, float ONNX and int8 ONNX, alternating the engines call by call so that load on a shared machine hits
them alike. Prints a table of median (best) milliseconds and the float / int8 ratios from this run; writes
``bench/out/quantize.json``.

    .venv/bin/python bench/bench_quantize.py [--models mobilenet_v2 mobilenet_v2-frame resnext50_32x4d] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project_settings.settings")

MODELS = {  # name: (backbone, head, hidden size, crop size)
    "mobilenet_v2": ("mobilenet_v2", "lstm", 1280, 112),
    "mobilenet_v2-frame": ("mobilenet_v2", "frame", 0, 112),
    "resnext50_32x4d": ("resnext50_32x4d", "lstm", 2048, 112),
}


def make_checkpoint(name: str, length: int, folder: Path) -> Path:
    from ml_app.detection.checkpoints import new_checkpoint, save_checkpoint
    from ml_app.detection.network import ModelConfig
    from ml_app.detection.preprocessing import Preprocessing

    backbone, head, hidden, size = MODELS[name]
    config = ModelConfig(backbone=backbone, head=head) if head == "frame" else ModelConfig(backbone, hidden_size=hidden)
    checkpoint = new_checkpoint(
        config, Preprocessing(image_size=size), 1 if head == "frame" else length, pretrained="random"
    )
    path = folder / f"{name}.pt"
    save_checkpoint(checkpoint, path)
    return path


def timed(call, clips) -> float:
    start = time.perf_counter()
    call(clips)
    return time.perf_counter() - start


def measure(name: str, length: int, repeats: int, folder: Path) -> dict:
    import torch

    from ml_app.detection.checkpoints import build_model, load_checkpoint
    from ml_app.detection.onnx_model import OnnxModel
    from model_creation.training.onnx_export import export_onnx
    from model_creation.training.quantize import export_int8
    from tests.training_data import synthetic_manifest

    checkpoint_path = make_checkpoint(name, length, folder)
    checkpoint = load_checkpoint(checkpoint_path)
    size = checkpoint.preprocessing.image_size
    manifest = synthetic_manifest(
        folder / f"clips-{name}", videos_per_label=2, length=length, size=size, preprocessing=checkpoint.preprocessing
    )
    export_onnx(checkpoint_path, folder / f"{name}.onnx")
    engines = {"pytorch": build_model(checkpoint).eval(), "float onnx": OnnxModel(folder / f"{name}.onnx")}
    agreement = {}
    for ops in ("all", "linear"):
        result = export_int8(checkpoint_path, folder / f"{name}.{ops}.int8.onnx", manifest, ops=ops, tolerance=1.0)
        engines[f"int8 onnx ({ops})"] = OnnxModel(result.path)
        agreement[ops] = {
            "max_abs_difference": result.agreement["raw"]["max_abs_difference"],
            "int8_mb": result.agreement["int8_size_bytes"] / 1e6,
            "float_mb": result.agreement["float_size_bytes"] / 1e6,
        }
    clips = torch.randn(1, length, 3, size, size, generator=torch.Generator().manual_seed(0))
    seconds: dict[str, list[float]] = {engine: [] for engine in engines}
    with torch.inference_mode():
        for call in engines.values():  # warm-up: oneDNN and onnxruntime pick their kernels
            call(clips), call(clips)
        for _ in range(repeats):
            for engine, call in engines.items():
                seconds[engine].append(timed(call, clips))
    return {
        "model": name,
        "frames": length,
        "crop": size,
        "median_ms": {engine: 1000 * statistics.median(values) for engine, values in seconds.items()},
        "best_ms": {engine: 1000 * min(values) for engine, values in seconds.items()},
        "agreement": agreement,
    }


def _ratio(median: dict[str, float], a: str, b: str) -> str:
    return f"{median[a] / median[b]:.2f}x"


def table(rows: list[dict]) -> str:
    engines = list(rows[0]["median_ms"])
    lines = [
        "| model | N | " + " | ".join(f"{engine} ms" for engine in engines) + " | float onnx / int8 (all) | "
        "float onnx / int8 (linear) | pytorch / int8 (all) | size MB float / int8 (all) | "
        "max prob. diff all / linear |",
        "|---" * (len(engines) + 7) + "|",
    ]
    for row in rows:
        median, best, agreement = row["median_ms"], row["best_ms"], row["agreement"]
        cells = [f"{median[e]:.1f} ({best[e]:.1f})" for e in engines]
        lines.append(
            f"| {row['model']} | {row['frames']} | "
            + " | ".join(cells)
            + f" | **{_ratio(median, 'float onnx', 'int8 onnx (all)')}** | "
            f"{_ratio(median, 'float onnx', 'int8 onnx (linear)')} | "
            f"{_ratio(median, 'pytorch', 'int8 onnx (all)')} | {agreement['all']['float_mb']:.1f} / "
            f"{agreement['all']['int8_mb']:.1f} | {agreement['all']['max_abs_difference']:.1e} / "
            f"{agreement['linear']['max_abs_difference']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    import django

    django.setup()
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["mobilenet_v2", "mobilenet_v2-frame"])
    parser.add_argument("--frames", type=int, default=20, help="N: frames per window")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--output", default=str(REPO / "bench" / "out" / "quantize.json"))
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as folder:
        for name in args.models:
            print(f"{name} ...", file=sys.stderr, flush=True)
            rows.append(measure(name, args.frames, args.repeats, Path(folder)))
    print(f"Machine: {machine}; batch 1, N = {args.frames}; median (best) of {args.repeats} calls per engine.")
    print(table(rows))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
