"""Benchmark: what each piece of a whole-video analysis costs on one core, and the floor that sets on two.

    .venv/bin/python bench/bench_stage_costs.py                       # the 1080p DFDC clip, the shipped 20-frame file
    .venv/bin/python bench/bench_stage_costs.py --clip PATH --checkpoint PATH

Times, in one process, one call of each piece the analysis repeats (median of several): a full CenterFace scan, a
re-detection near a known face, dlib's face descriptor, the network on a batch of two 20-frame clips (onnxruntime's
backbone and PyTorch's), an RGB conversion; then decoding every frame of the clip. Multiplied by the calls a default
analysis makes (``--calls``: what ``bench_pipeline.py`` reports for the clip), they give the CPU seconds the analysis
cannot do without, and half of that is the fastest two cores could finish it. Last, decoding beside a thread that
computes descriptors shows why those run after decoding: dlib holds the GIL for a whole descriptor.
Not part of CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

DEFAULT_CLIP = BENCH.parent.parent / "shared" / "data" / "samples" / "videos" / "fake" / "dfdc_abqwwspghj.mp4"


def seconds(call: Callable[[], object], repeat: int = 7) -> float:
    """Median seconds of ``call`` after one untimed call."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def decode_all(path: Path, frames: int | None = None) -> float:
    import av

    started = time.perf_counter()
    with av.open(str(path)) as container:
        for number, _ in enumerate(container.decode(video=0)):
            if frames is not None and number + 1 >= frames:
                break
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument(
        "--checkpoint", type=Path, default=BENCH.parent / "models" / "default_mobilenet_v2_20_frames.pt"
    )
    parser.add_argument(
        "--calls",
        nargs=5,
        type=int,
        default=[16, 144, 8, 4, 160],
        metavar=("SCANS", "NEAR", "DESCRIPTORS", "BATCHES", "FRAMES"),
        help="calls per analysis (default: the 1080p clip at N = 20, 8 windows, one face)",
    )
    args = parser.parse_args()
    if not args.clip.is_file():
        sys.exit(f"no clip at {args.clip}")

    import av
    import numpy as np
    import torch

    from ml_app.detection.faces.dlib_models import face_descriptor
    from ml_app.detection.model_loading import load_detector_model
    from ml_app.detection.preprocessing import crops_to_tensor

    torch.set_num_threads(1)  # one core's cost; the analysis runs these pieces on two cores at once
    loaded = load_detector_model(args.checkpoint, "cpu")
    eager = load_detector_model(args.checkpoint, "cpu", onnx_backbone=False)
    with av.open(str(args.clip)) as container:
        frame = next(container.decode(video=0))
    image = frame.to_ndarray(format="rgb24")
    faces = loaded.detector.detect(image)
    if not faces:
        sys.exit("no face in the clip's first frame")
    box = faces[0].box
    size = loaded.checkpoint.preprocessing.image_size
    crops = np.random.default_rng(0).integers(0, 255, (2, loaded.sequence_length, size, size, 3), dtype=np.uint8)
    clips = crops_to_tensor(crops, loaded.checkpoint.preprocessing)

    with torch.inference_mode():
        pieces = {
            "full face scan (CenterFace)": seconds(lambda: loaded.detector.detect(image)),
            "re-detection near a face": seconds(lambda: loaded.detector.detect_near(image, box), 21),
            "face descriptor (dlib, holds the GIL)": seconds(lambda: face_descriptor(image, box)),
            "network, 2 clips, onnxruntime backbone": seconds(lambda: loaded.scoring(clips)),
            "network, 2 clips, PyTorch backbone": seconds(lambda: eager.scoring(clips)),
            "RGB conversion of a frame": seconds(lambda: frame.to_ndarray(format="rgb24"), 21),
        }
    decoding = statistics.median(decode_all(args.clip) for _ in range(3))
    scans, near, descriptors, batches, frames = args.calls
    calls = [scans, near, descriptors, batches, batches, frames]

    print(f"{args.clip.name}, {args.checkpoint.name}; one thread each, medians\n")
    print("| piece | seconds a call | calls per analysis | seconds per analysis |")
    print("|---|---|---|---|")
    total = 0.0
    for (name, cost), count in zip(pieces.items(), calls, strict=True):
        if "PyTorch" in name:
            print(f"| {name} | {cost * 1000:.1f} ms | ({count}) | ({cost * count:.2f}) |")
            continue
        total += cost * count
        print(f"| {name} | {cost * 1000:.1f} ms | {count} | {cost * count:.2f} |")
    print(f"| decoding every frame (PyAV default) | | 1 | {decoding:.2f} |")
    floor = (total + decoding) / 2
    print(
        f"\nCPU seconds without which the analysis cannot finish: {total + decoding:.2f} (decoding every frame "
        f"counted in full: the gaps between windows hold reference frames); on two cores at best {floor:.2f} s, "
        f"{floor / decoding:.2f}x decoding every frame."
    )

    stop = threading.Event()

    def describe() -> None:
        while not stop.is_set():
            face_descriptor(image, box)

    alone = decode_all(args.clip, 30)
    thread = threading.Thread(target=describe, daemon=True)
    thread.start()
    try:
        beside = decode_all(args.clip, 30)
    finally:
        stop.set()
        thread.join()
    print(f"Decoding 30 frames: {alone:.2f} s alone, {beside:.2f} s beside a thread computing descriptors.")


if __name__ == "__main__":
    main()
