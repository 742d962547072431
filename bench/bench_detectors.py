"""Face detectors side by side, and the tracker settings with each (bench/README.md, "Face detectors").

    .venv/bin/python bench/bench_detectors.py                      # the scan table (about 5 minutes on 2 cores)
    .venv/bin/python bench/bench_detectors.py --track              # + the tracker table (about 10 minutes more)
    .venv/bin/python bench/bench_detectors.py --track --stride 3   # the same on every 3rd frame: 3x faster motion
    .venv/bin/python bench/bench_detectors.py --sizes              # + CenterFace's detections by face size

Scan table: milliseconds per full-frame scan (``detect``; median over the sampled frames, the fastest in brackets:
the machine is shared) and the sampled frames (every 5th) with a face, in ``dfdc_abofeumbvv.mp4`` (one face in a dark
room, 1080p), ``hamilton_360p.mp4`` (a singer, scene cuts, an audience) and ``dfdc_abqwwspghj.mp4`` (a lit face,
1080p). dlib's CNN runs on the first ``--cnn-frames`` frames only (seconds per frame on a CPU). CenterFace also runs
on OpenCV's dnn module, to compare the engines. One thread per call, as the worker runs detection beside the
network's thread.

Tracker table: ``--windows`` windows of 20 frames of every clip in ../shared/data/samples/videos and
../shared/data/real_clips, followed by ``WindowTracker`` with the row's settings (the ``_NEAR_*`` rows change
``faces.centerface``'s local-search constants). The reference is a full scan of every frame with the same detector:
"recall" is the share of its faces (at most ``max_faces`` per frame) that the tracker has a box for (IoU >= 0.5),
"IoU" their mean overlap, "boxes it lacks" the share of the tracker's boxes the reference has nothing near (IoU < 0.3),
"windows followed" how many windows have a face with a box in all 20 frames, detected in at least half.

Sizes table: CenterFace's full-scan detections (score >= 0.3, no size limit) by face size, at 480 and 640 px, and the
share a scan of the next frame finds again (a real face persists, a false one flickers). Prints Markdown; not CI.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
SAMPLES = SHARED / "samples" / "videos"

from ml_app.detection.faces import build_detector, centerface  # noqa: E402
from ml_app.detection.faces.base import resize, scan_scale  # noqa: E402
from ml_app.detection.preprocessing import DetectorSettings  # noqa: E402
from ml_app.detection.tracking import WindowTracker  # noqa: E402
from ml_app.detection.video import DecodedFrame, VideoReader, plan_windows, probe_video  # noqa: E402

SCAN_CLIPS = ("fake/dfdc_abofeumbvv.mp4", "real/hamilton_360p.mp4", "fake/dfdc_abqwwspghj.mp4")


def clips() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.mp4")) + sorted((SHARED / "real_clips").glob("*.mp4"))


def sampled_frames(path: Path, every: int = 5) -> list[np.ndarray]:
    """Every ``every``-th frame of a clip, RGB, upright."""
    info = probe_video(path)
    with VideoReader(info) as reader:
        return [frame.image for frame in reader.read_window(0.0, info.frame_count) if frame.index % every == 0]


class OpenCvCenterFace:
    """CenterFace on cv2.dnn, only to compare engines (the app runs it on onnxruntime)."""

    def __init__(self, max_side: int, threshold: float):
        import cv2

        cv2.setNumThreads(1)
        self.net = cv2.dnn.readNetFromONNX(str(centerface.model_path()))
        self.max_side, self.threshold = max_side, threshold

    def detect(self, image: np.ndarray) -> list:
        small = resize(image, scan_scale(image, self.max_side))
        height, width = small.shape[:2]
        blob = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), dtype=np.float32)
        blob[0, :, :height, :width] = small.transpose(2, 0, 1)
        self.net.setInput(blob)
        heat, sizes, offsets, points = self.net.forward(["537", "538", "539", "540"])
        return centerface._decode(heat[0, 0], sizes[0], offsets[0], points[0], self.threshold, width, height)


def scan_table(cnn_frames: int) -> None:
    threshold = DetectorSettings().score_threshold
    rows: list[tuple[str, Callable[[np.ndarray], list]]] = [
        ("face_recognition HOG, 640 px (the shipped models')", build_detector(DetectorSettings(model="hog")).detect),
        (
            f"face_recognition CNN, 640 px (first {cnn_frames} frames)",
            build_detector(DetectorSettings(model="cnn")).detect,
        ),
    ]
    for side in (480, 640):
        rows.append((f"CenterFace, onnxruntime, {side} px", build_detector(DetectorSettings(max_side=side)).detect))
    for side in (480, 640):
        rows.append((f"CenterFace, OpenCV dnn, {side} px", OpenCvCenterFace(side, threshold).detect))
    frames = {name: sampled_frames(SAMPLES / name) for name in SCAN_CLIPS}
    header = ["detector", *[f"{Path(n).name}: ms per frame; frames with a face (faces)" for n in SCAN_CLIPS]]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, detect in rows:
        cells = []
        for images in frames.values():
            subset = images[:cnn_frames] if "CNN" in name else images
            detect(subset[0])  # warm-up: first-call allocations
            times, found, faces = [], 0, 0
            for image in subset:
                started = time.perf_counter()
                result = detect(image)
                times.append((time.perf_counter() - started) * 1000)
                found += bool(result)
                faces += len(result)
            cells.append(f"{statistics.median(times):.0f} ({min(times):.0f}) ms; {found}/{len(subset)} ({faces})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


# --- tracking --------------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    reference_faces: int = 0
    matched: int = 0
    iou_sum: float = 0.0
    boxes: int = 0
    unmatched: int = 0
    windows: int = 0
    followed: int = 0
    seconds: float = 0.0
    frames: int = 0

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.seconds / max(1, self.frames) * 1000:.1f} | "
            f"{self.matched / max(1, self.reference_faces):.1%} | {self.iou_sum / max(1, self.matched):.2f} | "
            f"{self.unmatched / max(1, self.boxes):.1%} | {self.followed}/{self.windows} |"
        )

    def add(self, tracker: WindowTracker, released: list, reference: list[list]) -> None:
        self.seconds += tracker.seconds
        self.frames += len(released)
        self.windows += 1
        detections = {tid: tracker.detections_of(tid) for tid in tracker.track_ids}
        self.followed += any(
            all(tid in item.boxes for item in released) and 2 * len(detections[tid]) >= len(released)
            for tid in tracker.track_ids
        )
        for item, faces in zip(released, reference, strict=True):
            for face in faces:
                best = max((face.box.iou(box) for box in item.boxes.values()), default=0.0)
                if best >= 0.5:
                    self.matched += 1
                    self.iou_sum += best
            self.reference_faces += len(faces)
            self.boxes += len(item.boxes)
            self.unmatched += sum(1 for box in item.boxes.values() if all(f.box.iou(box) < 0.3 for f in faces))


def windows_of(path: Path, count: int, stride: int, length: int = 20) -> list[list[DecodedFrame]]:
    """Windows of ``length`` frames, taking every ``stride``-th frame (faces move ``stride`` times as fast)."""
    info = probe_video(path)
    windows = []
    with VideoReader(info) as reader:
        for plan in plan_windows(info, length * stride, count):
            frames = list(reader.read_window(plan.start_time, plan.length))[::stride]
            windows.append([DecodedFrame(index=n, time=f.time, image=f.image) for n, f in enumerate(frames)])
    return windows


def follow(detector, frames: list[DecodedFrame]) -> tuple[WindowTracker, list]:
    tracker = WindowTracker(detector, len(frames))
    released = []
    for frame in frames:
        released.extend(tracker.push(frame))
    released.extend(tracker.finish())
    return tracker, released


def track_table(windows: int, stride: int) -> None:
    hog, cf = DetectorSettings(model="hog"), DetectorSettings()
    variants: list[tuple[str, DetectorSettings, dict[str, float]]] = [
        ("HOG 640 px, K=10 (the shipped models')", hog, {})
    ]
    variants += [(f"CenterFace {cf.max_side} px, K={k}", replace(cf, full_detect_every=k), {}) for k in (5, 10, 20)]
    variants.append(("CenterFace 480 px, K=10", replace(cf, max_side=480), {}))
    default_face, default_margin = centerface._NEAR_FACE, centerface._NEAR_MARGIN
    variants += [
        (f"CenterFace, near face {v:g} px (default {default_face:g})", cf, {"_NEAR_FACE": v}) for v in (32, 64)
    ]
    variants += [(f"CenterFace, near margin {v} (default {default_margin})", cf, {"_NEAR_MARGIN": v}) for v in (0.5, 1)]
    factor = centerface._NEAR_THRESHOLD_FACTOR
    variants.append((f"CenterFace, near threshold x1 (default x{factor})", cf, {"_NEAR_THRESHOLD_FACTOR": 1.0}))
    tallies = {name: Tally() for name, _, _ in variants}
    references: dict[DetectorSettings, object] = {}
    for path in clips():
        for frames in windows_of(path, windows, stride):
            if len(frames) < 20:
                continue
            scanned: dict[DetectorSettings, list[list]] = {}
            for name, settings, constants in variants:
                key = replace(settings, full_detect_every=1)
                if key not in scanned:
                    full = references.setdefault(key, build_detector(key))
                    scanned[key] = [full.detect(f.image)[: settings.max_faces] for f in frames]  # type: ignore[attr-defined]
                saved = {constant: getattr(centerface, constant) for constant in constants}
                try:
                    for constant, value in constants.items():
                        setattr(centerface, constant, value)
                    tallies[name].add(*follow(build_detector(settings), frames), scanned[key])
                finally:
                    for constant, value in saved.items():
                        setattr(centerface, constant, value)
        print(f"  {path.name}", file=sys.stderr, flush=True)
    print(f"Windows of 20 frames, every {stride} frame(s), {windows} per clip, {len(clips())} clips.\n")
    print(
        "| tracker settings | detect ms per frame | recall of per-frame full scans | IoU | boxes it lacks "
        "| windows followed |"
    )
    print("|---|---|---|---|---|---|")
    for name, _, _ in variants:
        print(tallies[name].row(name))


def sizes_table(windows: int) -> None:
    buckets = [(0, 24), (24, 32), (32, 48), (48, 96), (96, 100_000)]
    sides = (480, 640)
    counts = {(side, bucket): [0, 0.0, 0] for side in sides for bucket in buckets}
    detectors = {s: build_detector(DetectorSettings(max_side=s, min_face_size=0, score_threshold=0.3)) for s in sides}
    for path in clips():
        for frames in windows_of(path, windows, 1):
            for side, detector in detectors.items():
                found = [detector.detect(frame.image) for frame in frames[:8]]
                for now, later in itertools.pairwise(found):
                    for face in now:
                        bucket = next(b for b in buckets if b[0] <= face.box.size < b[1])
                        tally = counts[side, bucket]
                        tally[0] += 1
                        tally[1] += face.score
                        tally[2] += any(face.box.iou(other.box) >= 0.3 for other in later)
    print(
        "| face size (px in the frame) | " + " | ".join(f"{s} px: detections, mean score, found again" for s in sides)
    )
    print("|---|" + "---|" * len(sides))
    for bucket in buckets:
        cells = []
        for side in sides:
            count, score, again = counts[side, bucket]
            cells.append(f"{count}, {score / max(1, count):.2f}, {again / max(1, count):.0%}")
        label = f"{bucket[0]}-{bucket[1]}" if bucket[1] < 100_000 else f">= {bucket[0]}"
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--track", action="store_true", help="also the tracker table over the shared clips")
    parser.add_argument("--sizes", action="store_true", help="also CenterFace's detections by face size")
    parser.add_argument("--no-scan", action="store_true", help="skip the scan table")
    parser.add_argument("--windows", type=int, default=2, help="windows of 20 frames per clip (default 2)")
    parser.add_argument("--stride", type=int, default=1, help="tracker table: every N-th frame (default 1)")
    parser.add_argument("--cnn-frames", type=int, default=3, help="frames per clip for dlib's CNN (default 3)")
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        sys.exit(f"needs the shared sample clips in {SAMPLES}")
    if not args.no_scan:
        scan_table(args.cnn_frames)
    if args.track:
        print()
        track_table(args.windows, args.stride)
    if args.sizes:
        print()
        sizes_table(args.windows)


if __name__ == "__main__":
    main()
