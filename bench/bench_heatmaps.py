"""Benchmark: what heat maps cost beside the rest of the analysis, before and after issue 29, in one run; and, with
--compete, how much a competing CPU-heavy process slows each stage.

    .venv/bin/python bench/bench_heatmaps.py                              # the 1080p clip, N = 20, default model
    .venv/bin/python bench/bench_heatmaps.py --clips dfdc_abqwwspghj hamilton_360p --rounds 3
    .venv/bin/python bench/bench_heatmaps.py --compete                    # also beside a 2-thread PyTorch job

One process per clip loads the shipped default checkpoint (models/), analyses the clip once to warm up, then
alternates, ``--rounds`` times, between:

* "rest": the analysis itself (``analyze_video``, every person made FAKE by thresholds near 0 so that every one of
  them is flagged, as with ``--heatmaps flagged`` on a suspicious clip);
* "before": the maps as issue 29 found them (``before_maps``: a GradCAM object built per map, one map per face per
  window, the gradient pushed back through the whole backbone to the input, every window of a flagged person);
* "after, all windows": the maps as made now (``add_heatmaps``: one pass per window, the engine built once, the
  gradient only back to the layer) of the same windows, for the cost per map;
* "after": the same with the default cap (DETECTION_HEATMAP_WINDOWS = 2 per flagged person), for the cost per
  analysis.

The medians are printed with the ratios (maps / rest: issue 29's target is at most 0.5). With --compete, the whole
round is repeated while a second process multiplies matrices on 2 PyTorch threads (what a second worker, a training
job or a test suite looks like on a 2-core server); the ratio loaded / idle per stage is the target of issue 29
part 4 (at most 2). Writes bench/out/heatmaps.json. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.fresh_process import child_result  # noqa: E402

DEFAULT_SAMPLES = REPO.parent / "shared" / "data" / "samples" / "videos"
COMPETITOR = """
import torch, time
torch.set_num_threads(2)
a = torch.randn(768, 768)
print("ready", flush=True)
while True:
    a = torch.tanh(a @ a * 1e-3)
"""


def before_maps(loaded, sequences) -> float:
    """Issue 29's starting point, kept here to measure against: a GradCAM object (and its hooks) per map, the whole
    backward pass to the input. Returns its seconds."""
    import numpy as np
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from ml_app.detection.network import get_backbone
    from ml_app.detection.prediction import display_crops
    from ml_app.detection.preprocessing import crops_to_tensor

    class ClipGradCAM(GradCAM):
        def get_target_width_height(self, input_tensor):
            return input_tensor.size(-1), input_tensor.size(-2)

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
            per_frame = super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)
            return np.broadcast_to(per_frame.mean(axis=0, keepdims=True), per_frame.shape)

    network, prep = loaded.model, loaded.checkpoint.preprocessing
    fake = prep.fake_index
    started = time.perf_counter()
    for crops in sequences:
        clips = crops_to_tensor(display_crops(crops, prep.colour_order)[None], prep).requires_grad_(True)
        layer = network.backbone.get_submodule(get_backbone(network.config.backbone).cam_layer)

        def target(output, fake=fake):
            return output[fake] - output[1 - fake]

        with torch.enable_grad(), ClipGradCAM(network, [layer]) as cam:
            maps = cam(clips, targets=[target])
            recorded = cam.activations_and_grads
            raw = cam.get_cam_image(
                clips, layer, [target], recorded.activations[0].numpy(), recorded.gradients[0].numpy()
            )
        best = int(np.argmax(np.maximum(raw, 0).sum(axis=(1, 2))))
        show_cam_on_image(crops[best].astype(np.float32) / 255.0, maps[best], use_rgb=True, image_weight=0.5)
    return time.perf_counter() - started


def measure(video: str, rounds: int, compete: bool, threads: int) -> dict:
    """Runs inside a fresh process: warm up, then the rounds (idle, and with --compete beside the competitor)."""
    import torch

    from ml_app.detection.threads import set_threads

    set_threads(threads or None, 1 if threads else None)

    from ml_app.detection import gradcam
    from ml_app.detection.calibration import score_rule
    from ml_app.detection.defaults import shipped_file
    from ml_app.detection.heatmaps import DEFAULT_WINDOWS_PER_PERSON, add_heatmaps, select_tracks
    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.prediction import analyze_video

    started = time.perf_counter()
    gradcam.preload()
    import_seconds = time.perf_counter() - started
    loaded = load_detector_model(shipped_file(20), "cpu")
    rule = score_rule(loaded.checkpoint.calibration, 1e-6, 0.0, "option")  # every person FAKE: every one flagged

    def one_round() -> dict:
        result = analyze_video(video, loaded, rule=rule)
        rest = result.timings["total"]
        flagged = select_tracks(result, "flagged", 0)
        before = before_maps(loaded, [track.crops for _, track in flagged])
        add_heatmaps(result, [loaded], "flagged", 0)
        after_all = result.timings["heatmaps"]
        for _, track in flagged:
            track.heatmap = None
        add_heatmaps(result, [loaded], "flagged", DEFAULT_WINDOWS_PER_PERSON)
        capped = len(result.heatmap_list())
        stages = {key: result.timings[key] for key in ("decode", "detect", "network") if key in result.timings}
        return {
            "rest": rest,
            **stages,
            "before": before,
            "after_all": after_all,
            "after": result.timings["heatmaps"],
            "maps_all": len(flagged),
            "maps_after": capped,
        }

    one_round()  # warm: kernels picked, the engine built
    idle = [one_round() for _ in range(rounds)]
    loaded_rounds: list[dict] = []
    if compete:
        competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR], stdout=subprocess.PIPE, text=True)
        try:
            competitor.stdout.readline()  # type: ignore[union-attr]
            time.sleep(1.0)
            loaded_rounds = [one_round() for _ in range(rounds)]
        finally:
            competitor.kill()
            competitor.wait()
    return {
        "import_seconds": import_seconds,
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "idle": idle,
        "competing": loaded_rounds,
    }


def median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def render(clip: str, found: dict) -> str:
    idle, competing = found["idle"], found["competing"]
    maps_all, maps_after = idle[0]["maps_all"], idle[0]["maps_after"]  # the same in every round
    rest = median(idle, "rest")
    lines = [
        f"### {clip} (torch threads {found['torch_threads']}, interop {found['interop_threads']}; grad-cam import "
        f"{found['import_seconds']:.2f} s, paid once per process)",
        "",
        "| | maps | seconds | per map | maps / rest of the analysis |",
        "|---|---|---|---|---|",
        f"| rest of the analysis | | {rest:.2f} | | |",
    ]
    for key, label, count in (
        ("before", "before (a GradCAM per map, full backward)", maps_all),
        ("after_all", "after, the same windows", maps_all),
        ("after", "after, 2 windows per flagged person (default)", maps_after),
    ):
        seconds = median(idle, key)
        per_map = seconds / count if count else float("nan")
        lines.append(f"| {label} | {count} | {seconds:.2f} | {per_map:.3f} | {seconds / rest:.2f}x |")
    lines.append(
        f"\nBefore / after per map: {median(idle, 'before') / max(1e-9, median(idle, 'after_all')):.1f}x; "
        f"per analysis: {median(idle, 'before') / max(1e-9, median(idle, 'after')):.1f}x."
    )
    if competing:
        lines += ["", "| stage | idle s | beside a 2-thread job s | slowdown |", "|---|---|---|---|"]
        for key in ("rest", "decode", "detect", "network", "before", "after_all", "after"):
            if key in idle[0]:
                calm, busy = median(idle, key), median(competing, key)
                lines.append(f"| {key} | {calm:.2f} | {busy:.2f} | {busy / calm:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", default=["dfdc_abqwwspghj"])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compete", action="store_true")
    parser.add_argument("--threads", type=int, nargs="+", default=[0], help="torch threads to compare (0: torch's own)")
    parser.add_argument("--child", nargs=4, metavar=("VIDEO", "ROUNDS", "COMPETE", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        video, rounds, compete, threads = args.child
        print(json.dumps(measure(video, int(rounds), compete == "1", int(threads))))
        return
    results = {}
    for clip in args.clips:
        video = next(args.samples.rglob(f"{clip}.mp4"))
        for threads in args.threads:
            found = child_result(
                Path(__file__), "--child", str(video), str(args.rounds), "1" if args.compete else "0", str(threads)
            )
            results[f"{clip} threads={threads}"] = found
            print(render(clip, found), flush=True)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "heatmaps.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
