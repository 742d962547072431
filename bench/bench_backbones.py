"""Benchmark: the network stage of each backbone candidate of the default-model recipe (issue 16).

    .venv/bin/python bench/bench_backbones.py                 # every candidate, 20-frame windows, 8 windows a video
    .venv/bin/python bench/bench_backbones.py --frames 10 --repeats 9

A whole-video analysis scores ``DEFAULT_MAX_WINDOWS`` windows of N face crops; this times that network work alone
(``torch.inference_mode``, float32 on the CPU, torch's default thread count) for each backbone and crop size of the
recipe's table with a 256-unit LSTM head, interleaving the candidates round by round so that a busy machine slows
them alike, and reports the median and the ratio to MobileNetV2 at 112 px (the first default model's). Random
weights: the speed does not depend on them. Prints a Markdown table. Not part of CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    import torch

    from ml_app.detection.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_WINDOWS
    from ml_app.detection.network import DeepfakeDetector, ModelConfig
    from model_creation.training.default_recipe import BACKBONE_CANDIDATES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20, help="frames per window (the site's default length)")
    parser.add_argument("--windows", type=int, default=DEFAULT_MAX_WINDOWS, help="windows per video")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    args = parser.parse_args()

    models = {}
    for candidate in BACKBONE_CANDIDATES:
        config = ModelConfig(backbone=candidate.backbone, hidden_size=256)
        model = DeepfakeDetector(config, pretrained="random").eval()
        shape = (args.windows, args.frames, 3, candidate.image_size, candidate.image_size)
        models[candidate.key] = (candidate, model, torch.rand(shape))
    seconds: dict[str, list[float]] = {key: [] for key in models}
    with torch.inference_mode():
        for round_number in range(args.repeats + 1):
            for key, (_, model, batch) in models.items():
                started = time.perf_counter()
                for window in batch.split(DEFAULT_BATCH_SIZE):  # windows per network call, as the app
                    model(window)
                if round_number:  # the first round warms up
                    seconds[key].append(time.perf_counter() - started)
    base = statistics.median(next(iter(seconds.values())))
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}. {args.windows} windows of {args.frames} "
        f"frames, median of {args.repeats} rounds.\n"
    )
    print("| candidate | backbone | crop | network seconds per video | per frame (ms) | ratio to the first |")
    print("|---|---|---|---|---|---|")
    for key, (candidate, _, _) in models.items():
        median = statistics.median(seconds[key])
        per_frame = 1000 * median / (args.windows * args.frames)
        print(
            f"| {key} | {candidate.backbone} | {candidate.image_size} | {median:.2f} | {per_frame:.1f} | "
            f"{median / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
