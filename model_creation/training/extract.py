"""Face-crop clips from one video, made by the same code that feeds the network at inference.

Windows are placed by ``plan_windows``, frames decoded by ``VideoReader`` (or, for a folder of frame images, by
``frame_folder.FrameFolderReader`` at the settings' ``frame_fps``: the same windows and crops), faces found and
followed by the checkpoint's detector and ``WindowTracker``, cropped by ``crop_face`` and accepted by the same
"followed through the whole window" rule, all through ``windows.collect_window_faces``: the function
``analyze_video`` itself calls. People are linked across windows by ``decision.link_people`` as at inference, so
evaluation can score a video the way the app does.

``run_preprocess`` drives any :class:`Extractor` made by its :class:`ExtractorSettings`: :class:`ClipExtractor` here
for videos, ``extract_images.ImageExtractor`` for photos; :func:`extract_guarded` is the part they share, turning a
bad file into a record that says why instead of an exception that would stop the run.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml_app.detection.decision import link_people
from ml_app.detection.errors import DetectionError, VideoError
from ml_app.detection.faces import build_detector
from ml_app.detection.frame_folder import DEFAULT_FRAME_FPS, FrameFolderReader, probe_frame_folder
from ml_app.detection.preprocessing import Preprocessing
from ml_app.detection.timing import StageTimer
from ml_app.detection.video import VideoInfo, VideoReader, plan_windows, probe_video
from ml_app.detection.windows import FrameSource, collect_window_faces

from .layouts import VideoEntry
from .manifest import ClipRecord, VideoRecord

CLIPS_DIR = "clips"


class Extractor(Protocol):
    """Turns one entry into its clip files and record; holds a face detector, so one is made per process."""

    def extract(self, entry: VideoEntry, out_root: Path) -> VideoRecord:
        """Write the clips of ``entry`` under ``out_root``; a bad file is a record with the reason, never raises."""
        ...


class ExtractorSettings(Protocol):
    """What a preprocessing run needs of its settings: the manifest's fields, what a resumed run must match, and
    the extractor (built in each worker process from a pickled copy)."""

    @property
    def media(self) -> str: ...

    @property
    def preprocessing(self) -> Preprocessing: ...

    @property
    def sequence_length(self) -> int: ...

    @property
    def max_windows(self) -> int: ...

    def to_dict(self) -> dict[str, Any]: ...

    def extractor(self) -> Extractor: ...


@dataclass(frozen=True)
class ExtractSettings:
    """Everything that decides which crops a video yields; ``frame_fps`` is the frame rate of folders of frames."""

    preprocessing: Preprocessing
    sequence_length: int
    max_windows: int
    frame_fps: float = DEFAULT_FRAME_FPS

    def __post_init__(self) -> None:
        if self.sequence_length < 1 or self.max_windows < 1:
            raise ValueError("sequence length and windows per video must be at least 1")
        if not self.frame_fps > 0:
            raise ValueError(f"--fps must be positive, got {self.frame_fps:g}")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "preprocessing": self.preprocessing.to_dict(),
            "sequence_length": self.sequence_length,
            "max_windows": self.max_windows,
        }
        if self.frame_fps != DEFAULT_FRAME_FPS:  # only when set: folders made before frame folders still resume
            data["frame_fps"] = self.frame_fps
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractSettings:
        return cls(
            Preprocessing.from_dict(data["preprocessing"]),
            int(data["sequence_length"]),
            int(data["max_windows"]),
            float(data.get("frame_fps", DEFAULT_FRAME_FPS)),
        )

    @property
    def media(self) -> str:
        return "videos"  # not in to_dict: output folders made before photos existed must still resume

    def extractor(self) -> ClipExtractor:
        return ClipExtractor(self)


def extract_guarded(
    entry: VideoEntry, fill: Callable[[VideoRecord], None], expected: type[DetectionError]
) -> VideoRecord:
    """The record of ``entry`` as ``fill`` completes it; a bad file (``expected``, or anything a damaged file makes a
    decoder raise) becomes status ``broken`` with the reason and no clips, so one file never stops a run."""
    started = time.perf_counter()
    record = VideoRecord(
        video_id=entry.video_id,
        video=entry.relpath,
        source_path=str(entry.path),
        label=entry.label,
        dataset=entry.dataset,
        group=entry.group,
        split=entry.split,
        method=entry.method,
        original=entry.original,
    )
    try:
        fill(record)
    except expected as exc:
        record.status, record.reason = "broken", " ".join(exc.message.split())
    except Exception as exc:  # a damaged file can fail deep inside a decoder; report it, keep the run going
        record.status, record.reason = "broken", f"{type(exc).__name__}: {exc}"
    if record.status != "ok":
        record.clips = []
    record.seconds = round(time.perf_counter() - started, 3)
    return record


def open_frames(path: Path, frame_fps: float = DEFAULT_FRAME_FPS) -> tuple[VideoInfo, VideoReader | FrameFolderReader]:
    """The probe and a frame source of a video file, or of a folder of frame images played at ``frame_fps``."""
    if path.is_dir():
        info = probe_frame_folder(path, frame_fps)
        return info, FrameFolderReader(info)
    info = probe_video(path)
    return info, VideoReader(info)


class ClipFileError(ValueError):
    """A clip file that cannot be read back (empty, truncated or not a clip): says which and what to do."""


def save_clip(path: Path, crops: np.ndarray, frames: np.ndarray, boxes: np.ndarray) -> None:
    """Write one clip file whole or not at all: into a temporary name, then renamed, so a run that is killed (or a
    second run writing the same folder) never leaves a truncated file behind a record that says it is done."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as handle:
            np.savez_compressed(handle, crops=crops, frames=frames, boxes=boxes)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def load_clip(path: Path) -> np.ndarray:
    """The ``(frames, size, size, 3)`` uint8 crops of a clip file, in the model's colour order."""
    try:
        with np.load(path) as data:
            return data["crops"]
    except FileNotFoundError:
        raise
    except UNREADABLE as exc:
        raise unreadable_clip(path, exc) from exc


UNREADABLE = (EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile)


def unreadable_clip(path: Path, exc: BaseException) -> ClipFileError:
    """The one message for a clip file that cannot be read, wherever it is read."""
    return ClipFileError(
        f"The clip file '{path}' cannot be read ({type(exc).__name__}: {exc or 'empty file'}); it is empty or "
        "truncated. Run preprocess_videos on the same folder again: it redoes every video with a missing or "
        "empty clip file."
    )


class ClipExtractor:
    """Turns videos into clip files; holds one face detector, so make one per process."""

    def __init__(self, settings: ExtractSettings):
        self.settings = settings
        self.detector = build_detector(settings.preprocessing.detector)

    def extract(self, entry: VideoEntry, out_root: Path) -> VideoRecord:
        """Write the clips of ``entry`` under ``out_root/clips/<video id>/``; never raises for a bad video."""
        return extract_guarded(entry, lambda record: self._extract(entry, out_root, record), VideoError)

    def _extract(self, entry: VideoEntry, out_root: Path, record: VideoRecord) -> None:
        info, source = open_frames(entry.path, self.settings.frame_fps)
        with source as reader:
            self._windows(entry, out_root, record, info, reader)

    def _windows(
        self, entry: VideoEntry, out_root: Path, record: VideoRecord, info: VideoInfo, reader: FrameSource
    ) -> None:
        settings = self.settings
        prep, length = settings.preprocessing, settings.sequence_length
        record.fps, record.frame_count = round(info.fps, 4), info.frame_count
        record.width, record.height = info.width, info.height
        plans = plan_windows(info, length, settings.max_windows)
        record.windows = len(plans)
        if not plans:
            record.status = "too_short"
            record.reason = f"{info.frame_count} frames: fewer than one window of {length}."
            return
        folder = out_root / CLIPS_DIR / entry.video_id
        folder.mkdir(parents=True, exist_ok=True)
        linked: list[tuple[int, dict[int, np.ndarray]]] = []
        clips: dict[tuple[int, int], ClipRecord] = {}
        for plan in plans:
            faces = collect_window_faces(reader, plan, self.detector, prep, StageTimer())
            record.faces_found = max(record.faces_found, faces.faces_found)
            complete = faces.complete_tracks(prep.detector.min_detected_fraction)
            for track in complete:
                frames = np.array(faces.frame_indices()[:length], dtype=np.int64)
                boxes = np.array(faces.track_boxes(track), dtype=np.int32)
                name = f"w{plan.index:03d}_t{track}.npz"
                save_clip(folder / name, faces.sequence(track), frames, boxes)
                clips[(plan.index, track)] = ClipRecord(
                    file=f"{CLIPS_DIR}/{entry.video_id}/{name}",
                    window=plan.index,
                    start_frame=int(frames[0]),
                    track=track,
                    person=-1,
                    frames=length,
                    filled=faces.filled.get(track, 0),
                )
            if complete:
                record.windows_with_face += 1
                linked.append((plan.index, {track: faces.descriptor(track, self.detector) for track in complete}))
        for (window, track), person in link_people(linked).items():
            clips[(window, track)].person = person
        record.clips = sorted(clips.values(), key=lambda c: (c.window, c.track))
        record.people = len({clip.person for clip in record.clips})
        record.frames_kept = len(record.clips) * length
        if not record.clips:
            record.status = "no_face" if not record.faces_found else "face_lost"
            record.reason = (
                f"no face found in {len(plans)} window(s) of {length} frames"
                if not record.faces_found
                else f"faces seen, but none followed through a whole {length}-frame window"
            )
