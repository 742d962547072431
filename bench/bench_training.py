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

``--recipe`` instead times a frame model (MobileNetV2, 112 px, batch 32) as the default-model recipe trains it:
one random frame of each 40-frame clip, half of them self-blended, augmented and re-encoded, on real clip files of a
preprocessing folder (``--clips DIR``; default: 40-frame clips of the astronaut's portrait written for the run).
Four settings, each in a fresh process, in one run:

* "before": every clip file decompressed for each frame taken (as before the crop cache), two loader processes
  (the recipe's ``--workers 2``), float32: what the recipe did before;
* "before, in process": the same with the data loaded in the training process (``--workers 0``);
* "cache, in process": the decoded-crop cache (model_creation.training.crop_cache), loaded in the training process;
* "cache, in process, precision chosen at run time": the same in bfloat16 where the CPU runs it natively (what the
  precision alone changes);
* "after": the cache, two loader processes and the precision chosen at run time (bfloat16 on a CPU with native
  bfloat16, float32 elsewhere; the row says which): what ``train_model`` does now.

It prints faces per second and each setting's ratio to "before".
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

    times = timed_steps(step, steps, warmup)
    median = float(np.median(times))  # robust to another process taking the cores for a moment
    return {"step_seconds": times, "sequences_per_second": batch / median, "torch_threads": torch.get_num_threads()}


def timed_steps(step, steps: int, warmup: int) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones (oneDNN picks kernels and the
    allocator grows during the first steps)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return times


def recipe_measure(folder: str, workers: int, amp: bool, steps: int, warmup: int) -> dict:
    """Runs in a fresh process: time ``steps`` frame-model training steps on ``folder``'s clips."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from ml_app.detection.network import DeepfakeDetector, ModelConfig, backbone_preprocessing, use_fast_layout
    from model_creation.training.augment import AugmentSettings
    from model_creation.training.dataset import ClipDataset, with_self_blended
    from model_creation.training.evaluate import usable_items
    from model_creation.training.manifest import load_manifest
    from model_creation.training.precision import choose_precision

    torch.manual_seed(0)
    manifest = load_manifest(Path(folder) / "manifest.json")
    prep = backbone_preprocessing(manifest.preprocessing, "mobilenet_v2")
    items = with_self_blended(usable_items(manifest.videos))
    dataset = ClipDataset(manifest, items, 1, AugmentSettings.for_training(True, True), 0, prep, random_start=True)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=32 * (steps + warmup) * 2)
    loader = iter(DataLoader(dataset, 32, sampler=sampler, num_workers=workers))
    model = use_fast_layout(
        DeepfakeDetector(ModelConfig(backbone="mobilenet_v2", head="frame"), pretrained="random"), torch.device("cpu")
    )
    model.train()
    precision = choose_precision(torch.device("cpu"), amp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    criterion = torch.nn.CrossEntropyLoss()

    def step() -> None:
        clips, labels, _ = next(loader)
        with torch.autocast("cpu", dtype=precision.autocast, enabled=precision.enabled):
            logits = model(clips)
        loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = timed_steps(step, steps, warmup)
    return {"faces_per_second": 32 / float(np.median(times)), "precision": precision.name, "step_seconds": times}


def _recipe_clips(target: Path) -> Path:
    """40-frame clips of the astronaut's portrait at 112 px, in a preprocessing folder with its manifest."""
    import cv2
    import numpy as np
    import skimage.data

    from ml_app.detection.preprocessing import Preprocessing
    from model_creation.training.manifest import ClipRecord, Manifest, VideoRecord

    face = cv2.resize(skimage.data.astronaut()[0:260, 100:360], (112, 112), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    videos = []
    for number in range(48):
        label = "REAL" if number % 2 else "FAKE"
        video = VideoRecord(f"v{number}", f"{number}.mp4", "", label, "bench", f"bench:{number}")
        for window in range(4):
            crops = np.clip(face[None].astype(np.int16) + rng.integers(-6, 7, (40, 112, 112, 3)), 0, 255)
            name = f"clips/v{number}/w{window:03d}_t0.npz"
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(target / name, crops=crops.astype(np.uint8))
            video.clips.append(ClipRecord(name, window, 0, 0, 0, 40, 0))
        videos.append(video)
    Manifest(Preprocessing(image_size=112), 40, 4, videos, target).save(target / "manifest.json")
    return target


def recipe_main(args: argparse.Namespace) -> None:
    """The recipe's frame-model training: before, with the crop cache, and now (cache, loaders, precision)."""
    import shutil
    import tempfile

    from model_creation.training.crop_cache import build_crop_cache

    scratch = Path(tempfile.mkdtemp(prefix="bench-training-"))
    try:
        if args.clips:
            plain = scratch / "plain"
            shutil.copytree(args.clips, plain, ignore=shutil.ignore_patterns("crop_cache"))
        else:
            plain = _recipe_clips(scratch / "plain")
        cached = scratch / "cached"
        shutil.copytree(plain, cached)
        build_crop_cache(cached)
        flags = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        settings = {
            "before": (plain, 2, False),
            "before, in process": (plain, 0, False),
            "cache, in process": (cached, 0, False),
            "cache, in process, precision chosen at run time": (cached, 0, True),
            "after": (cached, 2, True),
        }
        rows = {}
        for name, (folder, workers, amp) in settings.items():
            child = f"recipe:{folder}:{workers}:{int(amp)}"
            rows[name] = child_result(__file__, "--child", child, *flags)
            print(f"{name}: {rows[name]['faces_per_second']:.1f} faces/s", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "training_recipe.json").write_text(json.dumps(rows, indent=2))
    base = rows["before"]["faces_per_second"]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; clips: {args.clips or 'generated'}; MobileNetV2 frame "
        f"model, 112 px, batch 32, median of {args.steps} timed steps after {args.warmup} untimed.\n"
    )
    print("| setting | data | loader processes | precision | faces per second | ratio to before |")
    print("|---|---|---|---|---|---|")
    for name, (_, workers, _) in settings.items():
        row = rows[name]
        data = "decompressed per frame" if name.startswith("before") else "crop cache"
        print(
            f"| {name} | {data} | {workers} | {row['precision']} | {row['faces_per_second']:.1f} | "
            f"{row['faces_per_second'] / base:.2f}x |"
        )


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
    parser.add_argument("--recipe", action="store_true", help="the recipe's frame-model training: before and after")
    parser.add_argument("--clips", help="--recipe: a preprocessing folder to take clips from (copied)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child.startswith("recipe:"):
        _, folder, workers, amp = args.child.split(":")
        print(json.dumps(recipe_measure(folder, int(workers), amp == "1", args.steps, args.warmup)))
        return
    if args.recipe:
        recipe_main(args)
        return
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
