"""Analysing a video: sample windows over its whole length, follow faces, score each face sequence, decide.

``load_detector_model`` keeps loaded checkpoints per process (a worker loads each once), ``analyze_video`` runs the
pipeline one window at a time and scores face sequences in batches, and the decision rules are:

* a window's score is its most suspicious face's fake probability;
* a person's score is the mean over the windows they appear in (people are linked across windows by face
  descriptor), and the video's score is its most suspicious person's;
* no window with a face followed for the whole window means INCONCLUSIVE, with the reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoints import Checkpoint, build_model, load_checkpoint
from .errors import ConfigurationError
from .faces import FaceDetector, build_detector
from .geometry import Box
from .network import DeepfakeDetector
from .preprocessing import crop_face, crops_to_tensor
from .results import AnalysisResult, PersonResult, TrackScore, WindowResult
from .tracking import TrackedFrame, WindowTracker
from .video import VideoInfo, VideoReader, WindowPlan, plan_windows, probe_video

log = logging.getLogger(__name__)

DEFAULT_MAX_WINDOWS = 8
DEFAULT_BATCH_SIZE = 2
SAME_PERSON_DISTANCE = 0.6  # face_recognition's own tolerance for "same person"

Progress = Callable[[str, float], None]


# --- loaded models --------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A checkpoint ready to analyse: network in eval mode on its device, and the face detector it was trained with."""

    checkpoint: Checkpoint
    model: DeepfakeDetector
    detector: FaceDetector
    device: torch.device
    load_seconds: float = 0.0

    @property
    def sequence_length(self) -> int:
        return self.checkpoint.sequence_length


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("CUDA was asked for but no CUDA device is available; use --device cpu.")
    return device


_cache: dict[tuple, LoadedModel] = {}
_cache_lock = threading.Lock()


def _cache_key(path: Path, device: torch.device) -> tuple:
    try:
        stat = path.stat()
        return (str(path), stat.st_mtime_ns, stat.st_size, str(device))
    except FileNotFoundError:
        return (str(path), None, None, str(device))


def is_model_cached(path: str | os.PathLike, device: str | torch.device | None = "auto") -> bool:
    """Whether ``load_detector_model`` would reuse a model already in this process."""
    with _cache_lock:
        return _cache_key(Path(path).resolve(), resolve_device(device)) in _cache


def load_detector_model(path: str | os.PathLike, device: str | torch.device | None = "auto") -> LoadedModel:
    """Load a checkpoint once per process and reuse it; a changed file (size or mtime) is loaded again."""
    path = Path(path).resolve()
    device = resolve_device(device)
    key = _cache_key(path, device)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        started = time.perf_counter()
        if path.suffix.lower() == ".onnx":  # from manage.py export_onnx: onnxruntime on the CPU, settings inside
            from .onnx_model import load_onnx_checkpoint

            checkpoint, model = load_onnx_checkpoint(path)
            device = torch.device("cpu")
        else:
            checkpoint = load_checkpoint(path)
            model = build_model(checkpoint).to(device)
            if device.type == "cpu":
                model.use_channels_last()
            checkpoint.state_dict = {}  # the weights now live in the model
        detector = build_detector(checkpoint.preprocessing.detector)
        loaded = LoadedModel(checkpoint, model, detector, device, time.perf_counter() - started)
        for old in [k for k in _cache if k[0] == key[0]]:
            del _cache[old]
        _cache[key] = loaded
        log.info("Loaded checkpoint %s (%s) in %.2f s", checkpoint.name, checkpoint.sha256, loaded.load_seconds)
        return loaded


def clear_model_cache() -> None:
    with _cache_lock:
        _cache.clear()


# --- timing ---------------------------------------------------------------------------------------------------------


class StageTimer:
    """Seconds spent per stage; stages may be entered many times."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, name: str, iterator: Iterator) -> Iterator:
        """Wrap an iterator so the time spent producing items counts for ``name``."""
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(name, time.perf_counter() - started)
                return
            self.add(name, time.perf_counter() - started)
            yield item


# --- scoring --------------------------------------------------------------------------------------------------------


class BatchScorer:
    """Collects face sequences and runs the network on ``batch_size`` of them at a time.

    With ``background`` the network runs in a second thread while the caller decodes and detects the next windows:
    PyTorch releases the GIL during its kernels, and face detection runs on one core, so the two overlap.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int, timer: StageTimer, background: bool = False):
        self.loaded = loaded
        self.batch_size = max(1, batch_size)
        self.timer = timer
        self._pending: list[tuple[TrackScore, np.ndarray]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer") if background else None
        self._running: list[Future] = []

    def add(self, track: TrackScore, crops: np.ndarray) -> None:
        self._pending.append((track, crops))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Score what is pending (in the background thread, if there is one)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        if self._pool is None:
            self.timer.add("network", self._score(batch))
        else:
            self._running.append(self._pool.submit(self._score, batch))

    def finish(self) -> None:
        """Score everything still pending and wait until every score is in."""
        self.flush()
        try:
            for future in self._running:
                self.timer.add("network", future.result())
        finally:
            self._running.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _score(self, batch: list[tuple[TrackScore, np.ndarray]]) -> float:
        started = time.perf_counter()
        prep = self.loaded.checkpoint.preprocessing
        with torch.inference_mode():
            clips = crops_to_tensor(np.stack([crops for _, crops in batch]), prep).to(self.loaded.device)
            logits = self.loaded.model(clips)
            probabilities = torch.softmax(logits.float(), dim=1)[:, prep.fake_index].cpu().tolist()
        for (track, _), probability in zip(batch, probabilities, strict=True):
            track.fake_probability = float(probability)
        return time.perf_counter() - started


# --- one window -----------------------------------------------------------------------------------------------------


@dataclass
class WindowFaces:
    """What one window yields before scoring: crops and boxes per track, and a patch to identify each face."""

    plan: WindowPlan
    frames: list[tuple[int, float]] = field(default_factory=list)  # (frame index, time) per offset
    crops: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    boxes: dict[int, dict[int, Box]] = field(default_factory=dict)
    filled: dict[int, int] = field(default_factory=dict)
    identity_patch: dict[int, tuple[int, np.ndarray, Box]] = field(default_factory=dict)
    empty_offsets: list[int] = field(default_factory=list)
    faces_found: int = 0

    def complete_tracks(self, min_detected_fraction: float) -> list[int]:
        """Faces with a box in every frame of the window, detected (not filled in) often enough."""
        length = self.plan.length
        if len(self.frames) < length:
            return []
        return [
            tid
            for tid, crops in self.crops.items()
            if len(crops) == length and length - self.filled.get(tid, 0) >= min_detected_fraction * length
        ]


def _identity_patch(image: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    height, width = image.shape[:2]
    region = box.square(margin=0.5).clipped(width, height).rounded()
    x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
    return image[y0:y1, x0:x1].copy(), box.shifted(-x0, -y0)


def collect_window_faces(reader: VideoReader, plan: WindowPlan, loaded: LoadedModel, timer: StageTimer) -> WindowFaces:
    prep = loaded.checkpoint.preprocessing
    tracker = WindowTracker(loaded.detector, plan.length)
    faces = WindowFaces(plan=plan)
    middle = plan.length // 2

    def take(released: list[TrackedFrame]) -> None:
        with timer.stage("crop"):
            for item in released:
                faces.frames.append((item.frame.index, item.frame.time))
                if not item.boxes:
                    faces.empty_offsets.append(item.offset)
                for tid, box in item.boxes.items():
                    faces.crops.setdefault(tid, {})[item.offset] = crop_face(item.frame.image, box, prep)
                    faces.boxes.setdefault(tid, {})[item.offset] = box
                    if tid in item.filled:
                        faces.filled[tid] = faces.filled.get(tid, 0) + 1
                    elif tid not in faces.identity_patch or faces.identity_patch[tid][0] < middle:
                        faces.identity_patch[tid] = (item.offset, *_identity_patch(item.frame.image, box))

    for frame in timer.timed("decode", reader.read_window(plan.start_time, plan.length)):
        released = tracker.push(frame)
        take(released)
    take(tracker.finish())
    timer.add("detect", tracker.seconds)
    faces.faces_found = len(tracker.track_ids)
    return faces


# --- the whole video ------------------------------------------------------------------------------------------------


def link_people(
    windows: list[tuple[WindowResult, dict[int, np.ndarray]]],
) -> dict[tuple[int, int], int]:
    """Give each (window, track) a person id; faces within one window are always different people.

    Single linkage: a face joins the person with the closest descriptor seen so far, so a person whose lighting or
    pose drifts over the video stays one person as long as consecutive appearances look alike.
    """
    people: list[list[np.ndarray]] = []
    assignment: dict[tuple[int, int], int] = {}
    for window, descriptors in windows:
        taken: set[int] = set()
        for track_id, descriptor in descriptors.items():
            best, best_distance = None, SAME_PERSON_DISTANCE
            for person_id, known in enumerate(people):
                if person_id in taken:
                    continue
                distance = min(float(np.linalg.norm(other - descriptor)) for other in known)
                if distance < best_distance:
                    best, best_distance = person_id, distance
            if best is None:
                people.append([descriptor])
                best = len(people) - 1
            else:
                people[best].append(descriptor)
            taken.add(best)
            assignment[(window.index, track_id)] = best
    return assignment


def _display_rgb(crops: np.ndarray, colour_order: str) -> np.ndarray:
    return np.ascontiguousarray(crops[..., ::-1]) if colour_order == "BGR" else crops


def _inconclusive_reason(windows: list[WindowResult], sequence_length: int) -> dict[str, str]:
    statuses = {w.status for w in windows}
    seconds = sum(w.end_time - w.start_time for w in windows)
    if statuses == {"video_ended"}:
        return {
            "code": "too_few_frames",
            "message": f"The video ended before a full window of {sequence_length} frames could be read.",
        }
    if "face_lost" in statuses:
        return {
            "code": "face_not_tracked",
            "message": f"Faces were found, but none stayed visible for {sequence_length} consecutive frames in any "
            f"of the {len(windows)} windows analysed. Try a shorter sequence length.",
        }
    return {
        "code": "no_face",
        "message": f"No face was found in any of the {len(windows)} windows analysed ({seconds:.1f} s of video). "
        "Faces that are very small, dark, turned away or hidden cannot be analysed.",
    }


def analyze_video(
    path: str | os.PathLike,
    loaded: LoadedModel,
    *,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threshold: float = 0.5,
    keep_crops: bool = True,
    progress: Progress | None = None,
    info: VideoInfo | None = None,
    overlap_network: bool = True,
) -> AnalysisResult:
    """Analyse one video with a loaded checkpoint. Raises a VideoError for files that are not usable video.

    ``info`` is the video's probe when the caller already has it (validation usually probes first).
    With ``overlap_network`` the network scores finished windows while later ones are decoded and searched for faces;
    the stage timings then add up to more than the total.
    """
    started = time.perf_counter()
    timer = StageTimer()
    report = progress or (lambda stage, fraction: None)
    checkpoint = loaded.checkpoint
    length = checkpoint.sequence_length
    colour_order = checkpoint.preprocessing.colour_order

    report("probe", 0.0)
    with timer.stage("probe"):
        info = info or probe_video(path)
    plans = plan_windows(info, length, max_windows)
    result = AnalysisResult(
        verdict="INCONCLUSIVE",
        sequence_length=length,
        video=info.to_dict(),
        checkpoint=checkpoint.describe(),
        threshold=threshold,
    )
    if checkpoint.untrained:
        result.warnings.append(
            f"The checkpoint '{checkpoint.name}' is untrained (random weights): its verdict means nothing."
        )
    if not plans:
        result.reason = {
            "code": "too_few_frames",
            "message": f"The video has {info.frame_count} frames; this checkpoint needs {length} consecutive "
            "frames. Choose a shorter sequence length.",
        }
        result.timings = {**timer.seconds, "total": time.perf_counter() - started}
        return result

    scorer = BatchScorer(loaded, batch_size, timer, background=overlap_network)
    collected: list[tuple[WindowResult, WindowFaces]] = []
    with VideoReader(info) as reader:
        for number, plan in enumerate(plans):
            report("windows", number / len(plans))
            faces = collect_window_faces(reader, plan, loaded, timer)
            window = WindowResult(
                index=plan.index,
                start_frame=faces.frames[0][0] if faces.frames else plan.start_frame,
                end_frame=faces.frames[-1][0] if faces.frames else plan.start_frame,
                start_time=faces.frames[0][1] if faces.frames else plan.start_time,
                end_time=faces.frames[-1][1] if faces.frames else plan.start_time,
                frames=len(faces.frames),
                status="scored",
                faces_found=faces.faces_found,
                frames_without_face=[faces.frames[o][0] for o in faces.empty_offsets if o < len(faces.frames)],
            )
            complete = faces.complete_tracks(checkpoint.preprocessing.detector.min_detected_fraction)
            if len(faces.frames) < length:
                window.status = "video_ended"
            elif not faces.faces_found:
                window.status = "no_face"
            elif not complete:
                window.status = "face_lost"
            for track_id in complete:
                crops = np.stack([faces.crops[track_id][o] for o in range(length)])
                track = TrackScore(
                    track_id=track_id,
                    person_id=-1,
                    fake_probability=float("nan"),
                    boxes=[faces.boxes[track_id][o].to_list() for o in range(length)],
                    filled_frames=faces.filled.get(track_id, 0),
                    crops=_display_rgb(crops, colour_order) if keep_crops else None,
                )
                window.tracks.append(track)
                scorer.add(track, crops)
            collected.append((window, faces))
        if reader.ended_at is not None and reader.ended_at + 1.0 < info.duration:
            result.warnings.append(
                f"Decoding stopped at {reader.ended_at:.1f} s although the file says it lasts {info.duration:.1f} s: "
                "it is probably truncated. Only the part that decodes was analysed."
            )
    report("network", 0.95)
    scorer.finish()

    with timer.stage("detect"):
        descriptors = []
        for window, faces in collected:
            found = {}
            for track in window.tracks:
                _, patch, box = faces.identity_patch[track.track_id]
                found[track.track_id] = loaded.detector.encode(patch, box)
            descriptors.append((window, found))
        people_of = link_people(descriptors)

    result.windows = [window for window, _ in collected]
    per_person: dict[int, list[tuple[int, TrackScore]]] = {}
    for window in result.windows:
        for track in window.tracks:
            track.person_id = people_of[(window.index, track.track_id)]
            per_person.setdefault(track.person_id, []).append((window.index, track))
    for person_id, appearances in sorted(per_person.items()):
        probability = float(np.mean([track.fake_probability for _, track in appearances]))
        best = max(appearances, key=lambda item: item[1].fake_probability)[1]
        thumbnail = best.crops[len(best.crops) // 2] if best.crops is not None else None
        result.people.append(
            PersonResult(
                person_id=person_id,
                windows=[index for index, _ in appearances],
                fake_probability=probability,
                verdict="FAKE" if probability >= threshold else "REAL",
                thumbnail=thumbnail,
            )
        )

    scored = [w for w in result.windows if w.status == "scored"]
    if not scored:
        result.reason = _inconclusive_reason(result.windows, length)
    else:
        probability = max(person.fake_probability for person in result.people)
        result.fake_probability = probability
        result.verdict = "FAKE" if probability >= threshold else "REAL"
        result.confidence = probability if result.verdict == "FAKE" else 1.0 - probability
        if len(scored) < len(result.windows):
            result.warnings.append(
                f"Only {len(scored)} of {len(result.windows)} windows had a face visible for all {length} frames; "
                "the verdict rests on those."
            )
    report("done", 1.0)
    result.timings = {**timer.seconds, "total": time.perf_counter() - started}
    return result
