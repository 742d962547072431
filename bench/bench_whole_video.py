"""Benchmark: whole-video analysis against decoding every frame, today's pipeline against its parts switched off,
interleaved in one process.

    .venv/bin/python bench/bench_whole_video.py                 # the 1080p DFDC clip, shipped 20-frame file, 5 rounds
    .venv/bin/python bench/bench_whole_video.py --rounds 9 --clip PATH --checkpoint PATH

On a shared machine whose speed drifts by tens of percent from one minute to the next, rows measured one after the
other (``bench_pipeline.py``) cannot separate a 10 % gain from the drift. Here every round decodes every frame of the
clip once with PyAV (its default threading, as ``bench_pipeline.py``'s ratio) and runs each configuration once, in
an order that rotates from round to round; the table gives medians, each configuration's ratio to decoding, and its
ratio to today's pipeline; the paired ratio is each round's analysis over that round's decoding (median and range
over the rounds), the figure least moved by the drift. Configurations: today's (the backbone by onnxruntime, face
descriptors in the helper process while later windows are decoded), each of the two switched off, and both off (the
pipeline before them).
Not part of CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.bench_pipeline import decode_every_frame  # noqa: E402

DEFAULT_CLIP = BENCH.parent.parent / "shared" / "data" / "samples" / "videos" / "fake" / "dfdc_abqwwspghj.mp4"
DEFAULT_CHECKPOINT = BENCH.parent / "models" / "default_mobilenet_v2_20_frames.pt"
TARGET = 1.3  # issue 29: whole-video analysis at most 1.3x decoding every frame

# name: (backbone by onnxruntime, descriptors in the helper process)
CONFIGURATIONS = {
    "today (onnxruntime backbone, descriptor process)": (True, True),
    "PyTorch backbone": (False, True),
    "descriptors after decoding, in this process": (True, False),
    "both off (before)": (False, False),
}


def paired_ratios(analyses: list[float], decodings: list[float]) -> list[float]:
    """Each round's analysis over the same round's decoding: minutes apart at most, so the machine's drift (tens of
    percent from one minute to the next here) mostly cancels, which a ratio of two medians does not do."""
    return [analysis / decoding for analysis, decoding in zip(analyses, decodings, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not args.clip.is_file():
        sys.exit(f"no clip at {args.clip}")

    from ml_app.detection import descriptor_process
    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.prediction import analyze_video

    models = {onnx: load_detector_model(args.checkpoint, "cpu", onnx_backbone=onnx) for onnx in (True, False)}
    descriptor_process.warm()
    names = list(CONFIGURATIONS)
    for name in names:  # first analyses: kernels chosen, the helper's models loaded
        onnx, helper = CONFIGURATIONS[name]
        analyze_video(args.clip, models[onnx], keep_crops=False, describe_in_process=helper)

    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    decoding: list[float] = []
    verdicts = set()
    load_before = os.getloadavg()
    for round_number in range(args.rounds):
        decoding.append(decode_every_frame(str(args.clip)))
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            onnx, helper = CONFIGURATIONS[name]
            started, used = time.perf_counter(), time.process_time()
            result = analyze_video(args.clip, models[onnx], keep_crops=False, describe_in_process=helper)
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - used)
            verdicts.add((result.verdict, len(result.people)))
        print(f"round {round_number + 1} of {args.rounds} done", file=sys.stderr)

    decode = statistics.median(decoding)
    today = statistics.median(seconds[names[0]])
    print(
        f"{args.clip.name}, {args.checkpoint.name}, {args.rounds} rounds; load average before / after: "
        f"{', '.join(f'{v:.2f}' for v in load_before)} / {', '.join(f'{v:.2f}' for v in os.getloadavg())}\n"
    )
    print(f"Decoding every frame (PyAV default): median {decode:.2f} s ({min(decoding):.2f}-{max(decoding):.2f}).\n")
    print(
        f"| configuration | whole video, median (range) | this process's CPU seconds | ratio to decoding "
        f"(target {TARGET}x) | paired ratio, median (range) | ratio to today |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        median = statistics.median(seconds[name])
        paired = paired_ratios(seconds[name], decoding)
        print(
            f"| {name} | **{median:.2f} s** ({min(seconds[name]):.2f}-{max(seconds[name]):.2f}) | "
            f"{statistics.median(cpu[name]):.2f} | **{median / decode:.2f}x** | "
            f"**{statistics.median(paired):.2f}x** ({min(paired):.2f}-{max(paired):.2f}) | {median / today:.2f}x |"
        )
    print(f"\nVerdicts and people found, every run: {sorted(verdicts)}")


if __name__ == "__main__":
    main()
