"""Benchmark: per-stage seconds, end-to-end seconds and peak memory per video and sequence length.

    .venv/bin/python bench/bench_pipeline.py                    # all sample clips, N = 10, 20, 100
    .venv/bin/python bench/bench_pipeline.py --baseline         # also the original app's pipeline, for ratios
    .venv/bin/python bench/bench_pipeline.py --shipped --lengths 10 20 40 --clips dfdc_abqwwspghj
                                                                # the default model in models/, beside random ResNeXt50
    .venv/bin/python bench/bench_pipeline.py --shipped --baseline --lengths 20 --clips dfdc_abqwwspghj --no-prefetch
                                                                # issue 11's ratio, the original app, decoding A/B

Each measurement runs in a fresh process (so peak memory is that video's): it loads a random-initialised ResNeXt50 +
LSTM checkpoint (with --shipped: the default MobileNetV2 + LSTM checkpoints in models/), analyses the video once
("first": oneDNN still compiling kernels) and again ("warm": what a worker that has served one request does).
"one window" analyses a single window; "whole video" the default analysis (``DEFAULT_MAX_WINDOWS`` windows spread
over the video). With --baseline, the original app's prediction path (bench/original_app.py) runs on the same
machine in the same invocation, and the table gives the ratio original / ours.
Every whole-video row also times decoding every frame of the clip once with PyAV, in the same process (twice around
the warm analysis, with PyAV's default threading and with frame threads), for issue 11's ratio: whole-video analysis
/ decoding every frame. With --no-prefetch each whole-video row is measured again without decoding ahead in a thread
(``overlap_decoding=False``), in the same run, for the gain of that alone.
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

DEFAULT_SAMPLES = REPO.parent / "shared" / "data" / "samples" / "videos"
STAGES = ("probe", "decode", "decode_wait", "detect", "crop", "network")
RATIO_TARGET = 1.3  # issue 11: whole-video default analysis at most 1.3x decoding every frame of the clip once


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


def measure(video: str, checkpoint: str, max_windows: int, prefetch: bool = True) -> dict:
    """Runs inside a fresh process: load, analyse twice, report; a whole-video row also decodes every frame, before
    and after the warm analysis."""
    import torch

    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.prediction import analyze_video

    started = time.perf_counter()
    loaded = load_detector_model(checkpoint, "cpu")
    load_seconds = time.perf_counter() - started
    options = {"max_windows": max_windows, "keep_crops": False, "overlap_decoding": prefetch}
    first = analyze_video(video, loaded, **options)
    decode_all: dict[str, list[float]] = {"default": [], "frame threads": []}
    whole = max_windows > 1
    if whole:
        decode_all["default"].append(decode_every_frame(video))
        decode_all["frame threads"].append(decode_every_frame(video, "AUTO"))
    cpu = time.process_time()
    warm = analyze_video(video, loaded, **options)
    cpu = time.process_time() - cpu
    if whole:
        decode_all["frame threads"].append(decode_every_frame(video, "AUTO"))
        decode_all["default"].append(decode_every_frame(video))
    return {
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
) -> list[dict]:
    """Every clip, length, mode (one window, the default number of windows) and model, each in a fresh process;
    with ``no_prefetch`` also the whole video without decoding ahead, right after the row with it."""
    from ml_app.detection.defaults import DEFAULT_MAX_WINDOWS

    modes = [("one window", 1, True), ("whole video", DEFAULT_MAX_WINDOWS, True)]
    if no_prefetch:
        modes.append(("whole video, no prefetch", DEFAULT_MAX_WINDOWS, False))
    rows = []
    for clip in clips:
        for length in lengths:
            for mode, windows, prefetch in modes:
                for model, checkpoints in models.items():
                    command = [__file__, "--measure", str(clip), str(checkpoints[length]), str(windows)]
                    result, wall = run_child([*command, *([] if prefetch else ["--no-prefetch"])])
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


def fmt(seconds: float) -> str:
    return f"{seconds:.2f}"


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
    parser.add_argument("--measure", nargs=3, metavar=("VIDEO", "CHECKPOINT", "MAX_WINDOWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        video, checkpoint, windows = args.measure
        print(json.dumps(measure(video, checkpoint, int(windows), prefetch=not args.no_prefetch)))
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
    rows = measure_ours(clips, args.lengths, models, args.samples, args.shipped, args.no_prefetch)
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


def render_decode_ratio(rows: list[dict]) -> str:
    """Issue 11: whole-video analysis (warm) / decoding every frame of the clip once with PyAV, from one process."""
    lines = [
        "| clip | N | mode | model | whole video, warm | its CPU seconds | decode every frame: PyAV default "
        f"| frame threads | ratio (target {RATIO_TARGET}x) | ratio to frame-threaded decoding | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        decode_all = row.get("decode_all", {})
        if not decode_all.get("default"):
            continue
        plain = sum(decode_all["default"]) / len(decode_all["default"])
        threaded = sum(decode_all["frame threads"]) / len(decode_all["frame threads"])
        total = row["warm"]["total"]
        lines.append(
            f"| {row['clip']} | {row['length']} | {row['mode']} | {row.get('model', 'random ResNeXt50')} | "
            f"**{fmt(total)}** | {fmt(row['warm_cpu'])} | "
            f"{' / '.join(fmt(v) for v in decode_all['default'])} | "
            f"{' / '.join(fmt(v) for v in decode_all['frame threads'])} | "
            f"**{total / plain:.2f}x** | {total / threaded:.2f}x | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def render_model_ratios(rows: list[dict]) -> str:
    """Random ResNeXt50 seconds / default MobileNetV2 seconds, per clip, length and mode, from one run."""
    lines = [
        "| clip | N | mode | default MobileNetV2, warm | random ResNeXt50, warm | ratio | network stage ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    by_key = {(r["clip"], r["length"], r["mode"], r["model"]): r for r in rows}
    for (clip, length, mode, model), light in by_key.items():
        if model != "default MobileNetV2":
            continue
        heavy = by_key[(clip, length, mode, "random ResNeXt50")]
        light_net, heavy_net = light["warm"].get("network", 0.0), heavy["warm"].get("network", 0.0)
        lines.append(
            f"| {clip} | {length} | {mode} | {fmt(light['warm']['total'])} | {fmt(heavy['warm']['total'])} | "
            f"{heavy['warm']['total'] / light['warm']['total']:.2f}x | "
            + (f"{heavy_net / light_net:.1f}x |" if light_net else "n/a |")
        )
    return "\n".join(lines)


def render(rows: list[dict], baselines: list[dict], machine: str) -> str:
    lines = [f"Machine: {machine}. Seconds; peak memory of the whole process.", ""]
    lines.append(
        "| clip | N | mode | "
        + ("model | " if any("model" in row for row in rows) else "")
        + "windows (scored) | frames | "
        + " | ".join(STAGES)
        + " | end to end, warm | first analysis "
        "| + checkpoint load | process wall | peak RSS MB |"
    )
    lines.append("|" + "---|" * (11 + len(STAGES) - 1 + any("model" in row for row in rows)))
    for row in rows:
        warm = row["warm"]
        lines.append(
            f"| {row['clip']} | {row['length']} | {row['mode']} | "
            + (f"{row['model']} | " if "model" in row else "")
            + f"{row['windows']} ({row['windows_scored']}) | "
            f"{row['frames_analysed']} | "
            + " | ".join(fmt(warm.get(stage, 0.0)) for stage in STAGES)
            + f" | **{fmt(warm['total'])}** | {fmt(row['first']['total'])} | {fmt(row['checkpoint_load'])} | "
            f"{fmt(row['process_wall'])} | {row['peak_rss_mb']:.0f} |"
        )
    if baselines:
        lines += [
            "",
            "Original app's pipeline on the same machine, same run (first N frames, model loaded per request):",
            "",
        ]
        lines.append(
            "| clip | N | original end to end | its decode / detect / model load / network | original peak RSS MB "
            "| ours, one window (warm / first + load) | ratio | ours, whole video (warm) | ratio |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for base in baselines:
            ours = {
                r["mode"]: r
                for r in rows
                if (r["clip"], r["length"]) == (base["clip"], base["length"]) and "MobileNet" not in r.get("model", "")
            }
            one, whole = ours["one window"], ours["whole video"]
            first_plus_load = one["first"]["total"] + one["checkpoint_load"]
            t = base["timings"]
            lines.append(
                f"| {base['clip']} | {base['length']} | **{fmt(t['total'])}** | "
                f"{fmt(t['decode'])} / {fmt(t['detect'])} / {fmt(t['model_load'])} / {fmt(t['network'])} | "
                f"{base['peak_rss_mb']:.0f} | "
                f"{fmt(one['warm']['total'])} / {fmt(first_plus_load)} | "
                f"{t['total'] / one['warm']['total']:.1f}x / {t['total'] / first_plus_load:.1f}x | "
                f"{fmt(whole['warm']['total'])} | {t['total'] / whole['warm']['total']:.1f}x |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
