"""Benchmark: what the memory layout and the scoring chunk do to a frame model's cost on this CPU.

    .venv/bin/python bench/bench_frame_speed.py          # MobileNetV2 at 160 px, EfficientNet-Lite0 at 224 px

The default recipe (``build_default_model``) spends most of its time training and validating frame models, so per
backbone and crop size it measures, each in a fresh process and in one run so that the ratios compare like with like:

* a training step (forward, backward, AdamW) on 32 one-frame clips, in PyTorch's default layout and channels-last;
* scoring 32 clips of 10 frames (a validation batch of ``train_model``) in channels-last, as one backbone call of 320
  frames and in ``INFERENCE_CHUNK`` frames at a time (what ``DeepfakeDetector.frame_features`` does when scoring).

The figure is milliseconds per frame, the median of the timed repeats after untimed warm-up ones (oneDNN picks
kernels in the first calls). Random weights (the cost does not depend on them). Writes bench/out/frame_speed.json
and prints a Markdown table. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.fresh_process import child_result  # noqa: E402

CASES = {"mobilenet_v2": 160, "efficientnet_lite0": 224}
TRAIN_BATCH, SCORE_CLIPS, SCORE_FRAMES = 32, 32, 10


def measure(backbone: str, size: int, mode: str, repeats: int, warmup: int) -> dict:
    """Runs in a fresh process: ms per frame of one mode (train-default, train-channels-last, score-whole,
    score-chunked)."""
    import numpy as np
    import torch

    from ml_app.detection.network import DeepfakeDetector, ModelConfig

    torch.manual_seed(0)
    model = DeepfakeDetector(ModelConfig(backbone=backbone, head="frame"), pretrained="random")
    if mode != "train-default":
        model.use_channels_last()
    if mode.startswith("train"):
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        clips, labels = torch.randn(TRAIN_BATCH, 1, 3, size, size), torch.randint(0, 2, (TRAIN_BATCH,))
        frames = TRAIN_BATCH

        def run() -> None:
            loss = torch.nn.functional.cross_entropy(model(clips), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    else:
        model.eval()
        batch = torch.randn(SCORE_CLIPS * SCORE_FRAMES, 3, size, size)
        frames = len(batch)

        def run() -> None:
            with torch.inference_mode():
                if mode == "score-whole":  # the whole batch in one backbone call, as before the chunking
                    model.pool(model.backbone(batch.contiguous(memory_format=torch.channels_last))).flatten(1)
                else:
                    model.frame_features(batch)

    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return {"ms_per_frame": float(np.median(times)) / frames * 1000, "threads": torch.get_num_threads()}


MODES = ("train-default", "train-channels-last", "score-whole", "score-chunked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backbone, mode = args.child.split(":")
        print(json.dumps(measure(backbone, CASES[backbone], mode, args.repeats, args.warmup)))
        return
    rows = []
    for backbone in CASES:
        for mode in MODES:
            result = child_result(
                __file__, "--child", f"{backbone}:{mode}", "--repeats", str(args.repeats), "--warmup", str(args.warmup)
            )
            rows.append({"backbone": backbone, "mode": mode, **result})
            print(f"{backbone} {mode}: {rows[-1]['ms_per_frame']:.1f} ms per frame", file=sys.stderr)
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "frame_speed.json").write_text(json.dumps(rows, indent=2))
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {rows[0]['threads']}; median of "
        f"{args.repeats} timed repeats after {args.warmup} untimed, ms per frame.\n"
    )
    print(
        "| backbone, crop | train: default layout | train: channels-last | ratio | score: 320 frames at once "
        "| score: chunked | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for backbone, size in CASES.items():
        cost = {r["mode"]: r["ms_per_frame"] for r in rows if r["backbone"] == backbone}
        print(
            f"| {backbone}, {size} px | {cost['train-default']:.1f} | {cost['train-channels-last']:.1f} | "
            f"{cost['train-default'] / cost['train-channels-last']:.2f}x | {cost['score-whole']:.1f} | "
            f"{cost['score-chunked']:.1f} | {cost['score-whole'] / cost['score-chunked']:.2f}x |"
        )


if __name__ == "__main__":
    main()
