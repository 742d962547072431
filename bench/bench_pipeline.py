"""Benchmark: per-stage seconds, end-to-end seconds and peak memory per video and sequence length.

    .venv/bin/python bench/bench_pipeline.py                    # all sample clips, N = 10, 20, 100
    .venv/bin/python bench/bench_pipeline.py --baseline         # also the original app's pipeline, for ratios
    .venv/bin/python bench/bench_pipeline.py --shipped --lengths 10 20 40 --clips dfdc_abqwwspghj
                                                                # the default model in models/, beside random ResNeXt50
    .venv/bin/python bench/bench_pipeline.py --shipped --baseline --lengths 20 --clips dfdc_abqwwspghj --no-prefetch
                                                                # issue 11's ratio, the original app, decoding A/B
    .venv/bin/python bench/bench_pipeline.py --shipped --lengths 20 --clips dfdc_abqwwspghj --torch-backbone \
        --inline-descriptors --repeat 3
                                                                # issue 29: onnxruntime's backbone against PyTorch's

Each measurement runs in a fresh process (so peak memory is that video's): it loads a random-initialised ResNeXt50 +
LSTM checkpoint (with --shipped: the default MobileNetV2 + LSTM checkpoints in models/), analyses the video once
("first": oneDNN still compiling kernels) and again ("warm": what a worker that has served one request does).
"one window" analyses a single window; "whole video" the default analysis (``DEFAULT_MAX_WINDOWS`` windows spread
over the video). With --baseline, the original app's prediction path (bench/original_app.py) runs on the same
machine in the same invocation, and the table gives the ratio original / ours.
Every whole-video row also times decoding every frame of the clip once with PyAV, in the same process (twice around
the warm analysis, with PyAV's default threading and with frame threads), for issue 11's ratio: whole-video analysis
/ decoding every frame. With --no-prefetch each whole-video row is measured again without decoding ahead in a thread
(``overlap_decoding=False``), in the same run, for the gain of that alone; with --torch-backbone, again scored by
PyTorch's backbone instead of onnxruntime's (``load_detector_model(onnx_backbone=False)``); with
--inline-descriptors, with the face descriptors computed in the analysing process after decoding, as before issue 29
(``describe_in_process=False``). On a machine whose speed
drifts (a shared VM), --repeat 5 times each row five times, interleaved with the decodings, and reports the median.
Writes bench/out/results.json and prints Markdown tables. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.fresh_process import child_result  # noqa: E402
from bench.pipeline_tables import render, render_decode_ratio, render_model_ratios  # noqa: E402

DEFAULT_SAMPLES = REPO.parent / "shared" / "data" / "samples" / "videos"


def decode_every_frame(video: str, thread_type: str | None = None) -> float:
    """Seconds PyAV takes to decode every frame of ``video`` once (no conversion); ``thread_type`` None: PyAV's
    default threading (SLICE, which x264's one-slice frames cannot use), else e.g. "AUTO" (frame threads)."""
    import av

    with av.open(video) as container:
        stream = container.streams.video[0]
        if thread_type:
            stream.codec_context.thread_type = thread_type
        started = time.perf_counter()
        for _ in container.decode(stream):
            pass
        return time.perf_counter() - started


def measure(
    video: str,
    checkpoint: str,
    max_windows: int,
    prefetch: bool = True,
    onnx_backbone: bool = True,
    repeat: int = 1,
    describe_in_process: bool = True,
) -> dict:
    """Runs inside a fresh process: load, analyse once (first), then ``repeat`` times (warm: the run with the median
    total is reported); a whole-video row also decodes every frame before and after each warm analysis."""
    import torch

    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.prediction import analyze_video

    started = time.perf_counter()
    loaded = load_detector_model(checkpoint, "cpu", onnx_backbone=onnx_backbone)
    load_seconds = time.perf_counter() - started
    options = {
        "max_windows": max_windows,
        "keep_crops": False,
        "overlap_decoding": prefetch,
        "describe_in_process": describe_in_process,
    }
    first = analyze_video(video, loaded, **options)
    decode_all: dict[str, list[float]] = {"default": [], "frame threads": []}
    whole = max_windows > 1
    runs = []
    for _ in range(max(1, repeat)):
        if whole:
            decode_all["default"].append(decode_every_frame(video))
            decode_all["frame threads"].append(decode_every_frame(video, "AUTO"))
        cpu = time.process_time()
        result = analyze_video(video, loaded, **options)
        runs.append((result, time.process_time() - cpu))
        if whole:
            decode_all["frame threads"].append(decode_every_frame(video, "AUTO"))
            decode_all["default"].append(decode_every_frame(video))
    warm, cpu = sorted(runs, key=lambda run: run[0].timings["total"])[len(runs) // 2]
    return {
        "warm_runs": [run.timings["total"] for run, _ in runs],
        "checkpoint_load": load_seconds,
        "first": first.timings,
        "warm": warm.timings,
        "warm_cpu": cpu,
        "prefetch": prefetch,
        "decode_all": decode_all,
        "verdict": warm.verdict,
        "windows": len(warm.windows),
        "windows_scored": sum(1 for w in warm.windows if w.status == "scored"),
        "frames_analysed": sum(w.frames for w in warm.windows),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
    }


def run_child(args: list[str]) -> tuple[dict, float]:
    """One measurement in a fresh process (``args``: the script and its flags), and that process's wall seconds."""
    started = time.perf_counter()
    result = child_result(*args)
    return result, time.perf_counter() - started


def make_checkpoints(lengths: list[int], folder: Path) -> dict[int, Path]:
    from ml_app.detection.checkpoints import new_checkpoint, save_checkpoint
    from ml_app.detection.network import ModelConfig
    from ml_app.detection.preprocessing import Preprocessing

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for length in lengths:
        path = folder / f"random_resnext50_{length}_frames.pt"
        if not path.exists():
            save_checkpoint(new_checkpoint(ModelConfig(), Preprocessing(), length, pretrained="random"), path)
        paths[length] = path
    return paths


def with_default_detector(paths: dict[int, Path], folder: Path) -> dict[int, Path]:
    """The shipped checkpoints' weights with today's default face detector (CenterFace): the same network, so the
    same cost, as a default model rebuilt with that detector."""
    from dataclasses import replace

    from ml_app.detection.checkpoints import load_checkpoint, save_checkpoint
    from ml_app.detection.preprocessing import DetectorSettings

    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for length, path in paths.items():
        target = folder / f"{path.stem}_centerface.pt"
        if not target.exists():
            checkpoint = load_checkpoint(path)
            checkpoint.preprocessing = replace(checkpoint.preprocessing, detector=DetectorSettings())
            checkpoint.name += "_centerface"
            save_checkpoint(checkpoint, target, half=True)
        made[length] = target
    return made


def shipped_checkpoints(lengths: list[int]) -> dict[int, Path]:
    """The default model's files (models/README.md), one per length."""
    from ml_app.detection.defaults import shipped_file

    paths = {length: REPO / shipped_file(length) for length in lengths}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        sys.exit(f"not shipped: {', '.join(missing)}")
    return paths


def checkpoints_before(revision: str, lengths: list[int], folder: Path) -> dict[int, Path]:
    """The shipped files of an earlier commit (``git show REV:models/...``), to time an old default model against
    the new one in the same run."""
    from ml_app.detection.defaults import shipped_file

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for length in lengths:
        target = folder / f"before_{revision.replace('/', '_')}_{length}.pt"
        blob = subprocess.run(
            ["git", "show", f"{revision}:{shipped_file(length)}"], check=False, cwd=REPO, capture_output=True
        )
        if blob.returncode:
            sys.exit(f"{revision} ships no {shipped_file(length)}: {blob.stderr.decode().strip()}")
        target.write_bytes(blob.stdout)
        paths[length] = target
    return paths


def legacy_state_dict(folder: Path) -> Path:
    """Random weights in the original app's layout, for the baseline to load on every request."""
    import torch

    from bench.original_app import Model

    path = folder / "original_random_state_dict.pt"
    if not path.exists():
        torch.save(Model(2).state_dict(), path)
    return path


def measure_ours(
    clips: list[Path],
    lengths: list[int],
    models: dict[str, dict[int, Path]],
    samples: Path,
    shipped: bool,
    no_prefetch: bool = False,
    torch_backbone: bool = False,
    repeat: int = 1,
    inline_descriptors: bool = False,
) -> list[dict]:
    """Every clip, length, mode (one window, the default number of windows) and model, each in a fresh process;
    with ``no_prefetch`` also the whole video without decoding ahead, and with ``torch_backbone`` also scored by
    PyTorch's backbone instead of onnxruntime's, right after the row with both."""
    from ml_app.detection.defaults import DEFAULT_MAX_WINDOWS

    modes = [("one window", 1, []), ("whole video", DEFAULT_MAX_WINDOWS, [])]
    if no_prefetch:
        modes.append(("whole video, no prefetch", DEFAULT_MAX_WINDOWS, ["--no-prefetch"]))
    if torch_backbone:
        modes.append(("whole video, PyTorch backbone", DEFAULT_MAX_WINDOWS, ["--torch-backbone"]))
    if inline_descriptors:
        modes.append(("whole video, descriptors in this process", DEFAULT_MAX_WINDOWS, ["--inline-descriptors"]))
    rows = []
    for clip in clips:
        for length in lengths:
            for mode, windows, flags in modes:
                for model, checkpoints in models.items():
                    command = [__file__, "--measure", str(clip), str(checkpoints[length]), str(windows)]
                    result, wall = run_child([*command, *flags, "--repeat", str(repeat)])
                    result.update(clip=str(clip.relative_to(samples)), length=length, mode=mode, process_wall=wall)
                    if shipped:
                        result["model"] = model
                    rows.append(result)
                    print(
                        f"{clip.name} N={length} {mode} {model}: warm {result['warm']['total']:.2f} s", file=sys.stderr
                    )
    return rows


def measure_baseline(clips: list[Path], samples: Path, out: Path) -> list[dict]:
    """The original app's pipeline on the clips the README compares: dfdc_abqwwspghj at 20 frames, 720p at 100."""
    state = legacy_state_dict(out / "checkpoints")
    targets = [(c, 20) for c in clips if "dfdc_abqwwspghj" in c.name] + [(c, 100) for c in clips if "720p" in c.name]
    baselines = []
    for clip, length in targets:
        original, wall = run_child([str(BENCH / "original_app.py"), str(clip), str(length), str(state)])
        original.update(clip=str(clip.relative_to(samples)), length=length, process_wall=wall)
        baselines.append(original)
        print(f"original {clip.name} N={length}: {original['timings']['total']:.1f} s", file=sys.stderr)
    return baselines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="folder of clips (searched recursively)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 100])
    parser.add_argument("--baseline", action="store_true", help="also time the original app's pipeline")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--clips", nargs="+", default=[], help="only clips whose name contains one of these")
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="also time the default checkpoints in models/ (ratios to ResNeXt50)",
    )
    parser.add_argument(
        "--default-detector",
        action="store_true",
        help="with --shipped: also the shipped weights with today's default detector (CenterFace)",
    )
    parser.add_argument(
        "--no-prefetch",
        action="store_true",
        help="also time each whole video without decoding ahead in a thread (overlap_decoding=False)",
    )
    parser.add_argument(
        "--before",
        metavar="REV",
        help="with --shipped: also the shipped files of an earlier commit (e.g. HEAD~1), timed in the same run",
    )
    parser.add_argument(
        "--torch-backbone",
        action="store_true",
        help="also time each whole video scored by PyTorch's backbone (not onnxruntime's)",
    )
    parser.add_argument(
        "--inline-descriptors",
        action="store_true",
        help="also time each whole video with face descriptors computed in the analysing process, after decoding",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="warm analyses per row, each between two decodings of every frame (the median run is reported)",
    )
    parser.add_argument("--measure", nargs=3, metavar=("VIDEO", "CHECKPOINT", "MAX_WINDOWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        video, checkpoint, windows = args.measure
        measured = measure(
            video,
            checkpoint,
            int(windows),
            not args.no_prefetch,
            not args.torch_backbone,
            args.repeat,
            not args.inline_descriptors,
        )
        print(json.dumps(measured))
        return

    clips = [c for c in sorted(args.samples.rglob("*.mp4")) if not args.clips or any(k in c.name for k in args.clips)]
    load_before = _load_average()
    if not clips:
        sys.exit(f"no clips under {args.samples}")
    models = {"random ResNeXt50": make_checkpoints(args.lengths, args.out / "checkpoints")}
    if args.shipped:  # the shipped model, with the random ResNeXt50 measured beside it in the same run for ratios
        shipped = shipped_checkpoints(args.lengths)
        models = {"default MobileNetV2": shipped, **models}
        if args.default_detector:
            centerface = with_default_detector(shipped, args.out / "checkpoints")
            models = {"default MobileNetV2, CenterFace": centerface, **models}
        if args.before:
            models = {**models, f"default at {args.before}": checkpoints_before(args.before, args.lengths, args.out)}
    flags = {
        "no_prefetch": args.no_prefetch,
        "torch_backbone": args.torch_backbone,
        "repeat": args.repeat,
        "inline_descriptors": args.inline_descriptors,
    }
    rows = measure_ours(clips, args.lengths, models, args.samples, args.shipped, **flags)
    baselines = measure_baseline(clips, args.samples, args.out) if args.baseline else []

    args.out.mkdir(parents=True, exist_ok=True)
    threads = rows[0]["torch_threads"]
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {threads}"
    machine += f"; load average before / after: {load_before} / {_load_average()}"
    name = "results_shipped.json" if args.shipped else "results.json"
    (args.out / name).write_text(
        json.dumps({"machine": machine, "shipped": args.shipped, "rows": rows, "baselines": baselines}, indent=2)
    )
    print(render(rows, baselines, machine))
    print("\n" + render_decode_ratio(rows))
    if args.shipped:
        print("\n" + render_model_ratios(rows))


def _load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()
