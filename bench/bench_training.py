"""Benchmark: training throughput in sequences per second (N = 20 frames, 112-pixel crops) per backbone.

    .venv/bin/python bench/bench_training.py                       # ResNeXt50 and MobileNetV2, on the CPU
    .venv/bin/python bench/bench_training.py --device cuda --amp   # when a GPU is available

Two figures per backbone, each in a fresh process:

* "step": forward, backward and AdamW step of the full CNN + LSTM model (hidden size = feature size, as train_model's
  default) on random clips already in memory: what the model costs;
* "with data": the same steps fed by ClipDataset + DataLoader from ``.npz`` clips with augmentation on, as
  ``train_model`` does: what a training epoch costs when data loading runs in the same process (``--workers 0``).

Warm-up steps are not timed; the figure is the batch size over the median step time, and in brackets over the
fastest step (what the machine does when nothing else runs on it). Writes
bench/out/training.json and prints a Markdown table. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.fresh_process import child_result  # noqa: E402


def measure(
    backbone: str, length: int, batch: int, steps: int, device: str, amp: bool, with_data: bool, warmup: int
) -> dict:
    """Runs in a fresh process: time ``steps`` training steps after ``warmup`` untimed ones."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from ml_app.detection.network import DeepfakeDetector, ModelConfig, get_backbone
    from ml_app.detection.preprocessing import Preprocessing, crops_to_tensor
    from model_creation.training.augment import AugmentSettings
    from model_creation.training.dataset import ClipDataset
    from model_creation.training.manifest import ClipRecord, Manifest, VideoRecord

    torch.manual_seed(0)
    target = torch.device(device)
    hidden_size = get_backbone(backbone).feature_size
    model = DeepfakeDetector(ModelConfig(backbone=backbone, hidden_size=hidden_size), pretrained="random")
    model.to(target).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(target.type, enabled=amp)
    criterion = torch.nn.CrossEntropyLoss()
    size = 112

    def batches():
        if not with_data:
            crops = np.random.default_rng(0).integers(0, 255, (batch, length, size, size, 3), dtype=np.uint8)
            clips = crops_to_tensor(crops, Preprocessing(image_size=size))  # inputs in the range real crops give
            labels = torch.randint(0, 2, (batch,))
            while True:
                yield clips, labels
        folder = Path(tempfile.mkdtemp())
        rng = np.random.default_rng(0)
        videos = []
        for number in range(batch * (steps + warmup)):
            name = f"c{number}.npz"
            np.savez_compressed(folder / name, crops=rng.integers(0, 255, (length, size, size, 3), dtype=np.uint8))
            video = VideoRecord(str(number), "", "", "FAKE" if number % 2 else "REAL", "bench", str(number))
            video.clips = [ClipRecord(name, 0, 0, 0, 0, length, 0)]
            videos.append(video)
        manifest = Manifest(Preprocessing(image_size=size), length, 1, videos, folder)
        from model_creation.training.dataset import ClipItem

        items = [ClipItem(video, video.clips[0]) for video in videos]
        loader = DataLoader(ClipDataset(manifest, items, length, AugmentSettings()), batch_size=batch)
        for clips, labels, _ in loader:
            yield clips, labels

    source = batches()

    def step() -> None:
        clips, labels = next(source)
        clips, labels = clips.to(target), labels.to(target)
        with torch.autocast(device_type=target.type, dtype=torch.float16, enabled=amp):
            logits = model(clips)
        loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if target.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):  # oneDNN picks kernels and the allocator grows during the first steps
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    median = float(np.median(times))  # robust to another process taking the cores for a moment
    return {"step_seconds": times, "sequences_per_second": batch / median, "torch_threads": torch.get_num_threads()}


def main() -> None:
    from ml_app.detection.network import BACKBONE_NAMES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", nargs="+", choices=BACKBONE_NAMES, default=list(BACKBONE_NAMES))
    parser.add_argument("--sequence-length", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backbone, with_data = args.child.split(":")
        result = measure(
            backbone,
            args.sequence_length,
            args.batch_size,
            args.steps,
            args.device,
            args.amp,
            with_data == "data",
            args.warmup,
        )
        print(json.dumps(result))
        return
    rows = []
    for backbone in args.backbones:
        for mode in ("step", "data"):
            flags = ["--sequence-length", str(args.sequence_length), "--batch-size", str(args.batch_size)]
            flags += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
            result = child_result(__file__, "--child", f"{backbone}:{mode}", *flags, *(["--amp"] if args.amp else []))
            rows.append({"backbone": backbone, "mode": mode, **result})
            print(f"{backbone} {mode}: {rows[-1]['sequences_per_second']:.2f} sequences/s", file=sys.stderr)
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "training.json").write_text(json.dumps(rows, indent=2))
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {rows[0]['torch_threads']}, "
        f"device {args.device}{' + AMP' if args.amp else ''}; N = {args.sequence_length}, 112 px, batch "
        f"{args.batch_size}, median of {args.steps} timed steps after {args.warmup} untimed.\n"
    )
    print("| backbone | model step only: median (best step) | with data loading + augmentation: median (best step) |")
    print("|---|---|---|")
    for backbone in args.backbones:
        step, data = (next(r for r in rows if r["backbone"] == backbone and r["mode"] == m) for m in ("step", "data"))
        cells = [
            f"**{r['sequences_per_second']:.2f}** ({args.batch_size / min(r['step_seconds']):.2f})"
            for r in (step, data)
        ]
        print(f"| {backbone} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
