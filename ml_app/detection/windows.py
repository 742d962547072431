"""One window of a video: its frames decoded, its faces found and followed, cropped the way the model was trained.

``collect_window_faces`` is the one per-window face loop: the app's analysis and dataset preprocessing both call it,
with a face detector, the checkpoint's preprocessing and a timer, nothing more. ``WindowFaces`` then says which faces
were followed through the whole window (the only ones the network scores), gives their crop sequences, and describes
a face for linking people across windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .faces import FaceDetector
from .geometry import Box
from .preprocessing import Preprocessing, crop_face
from .results import WindowResult, WindowStatus
from .timing import StageTimer
from .tracking import TrackedFrame, WindowTracker
from .video import DecodedFrame, WindowPlan

_IDENTITY_MARGIN = 0.5  # the patch kept per face for its descriptor: the face's square grown by this on every side


class FrameSource(Protocol):
    """Where a window's frames come from: a :class:`~.video.VideoReader`, or a :class:`~.prefetch.WindowPrefetcher`
    in front of one. Each times its own decoding (the reader's ``timer``), so the face loop does not."""

    def read_window(self, start_time: float, count: int) -> Iterator[DecodedFrame]: ...


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

    def status(self, complete: list[int]) -> WindowStatus:
        """Why a window is or is not scored: the video ended in it, no face, no face followed throughout."""
        if len(self.frames) < self.plan.length:
            return "video_ended"
        if not self.faces_found:
            return "no_face"
        return "scored" if complete else "face_lost"

    def sequence(self, track_id: int) -> np.ndarray:
        """The ``(N, S, S, 3)`` crops of a complete track, in the model's colour order."""
        return np.stack([self.crops[track_id][offset] for offset in range(self.plan.length)])

    def track_boxes(self, track_id: int) -> list[list[int]]:
        return [self.boxes[track_id][offset].to_list() for offset in range(self.plan.length)]

    def frame_indices(self) -> list[int]:
        return [index for index, _ in self.frames]

    def identity(self, track_id: int) -> tuple[np.ndarray, Box]:
        """The patch around a track's face, from its detected frame nearest the window's middle, and the face's box
        in it: what its descriptor is computed from."""
        _, patch, box = self.identity_patch[track_id]
        return patch, box

    def descriptor(self, track_id: int, detector: FaceDetector) -> np.ndarray:
        """The face descriptor of a track (see ``identity``)."""
        return detector.encode(*self.identity(track_id))

    def to_window(self, complete: list[int]) -> WindowResult:
        """The window's evidence without scores: where it lies, what was found, and its status given the
        ``complete`` tracks (from ``complete_tracks``)."""
        plan = self.plan
        first = self.frames[0] if self.frames else (plan.start_frame, plan.start_time)
        last = self.frames[-1] if self.frames else (plan.start_frame, plan.start_time)
        return WindowResult(
            index=plan.index,
            start_frame=first[0],
            end_frame=last[0],
            start_time=first[1],
            end_time=last[1],
            frames=len(self.frames),
            status=self.status(complete),
            faces_found=self.faces_found,
            frames_without_face=[self.frames[o][0] for o in self.empty_offsets if o < len(self.frames)],
        )


def _identity_patch(image: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    height, width = image.shape[:2]
    region = box.square(margin=_IDENTITY_MARGIN).clipped(width, height).rounded()
    x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
    return image[y0:y1, x0:x1].copy(), box.shifted(-x0, -y0)


def collect_window_faces(
    reader: FrameSource,
    plan: WindowPlan,
    detector: FaceDetector,
    preprocessing: Preprocessing,
    timer: StageTimer,
) -> WindowFaces:
    """Decode the window's frames, follow every face through them and crop each face as ``preprocessing`` says.

    Each frame is converted to pixels once, by the reader; the detector and the crops work on that array.
    """
    tracker = WindowTracker(detector, plan.length)
    faces = WindowFaces(plan=plan)
    middle = plan.length // 2

    def take(released: list[TrackedFrame]) -> None:
        with timer.stage("crop"):
            for item in released:
                faces.frames.append((item.frame.index, item.frame.time))
                if not item.boxes:
                    faces.empty_offsets.append(item.offset)
                for tid, box in item.boxes.items():
                    faces.crops.setdefault(tid, {})[item.offset] = crop_face(item.frame.image, box, preprocessing)
                    faces.boxes.setdefault(tid, {})[item.offset] = box
                    if tid in item.filled:
                        faces.filled[tid] = faces.filled.get(tid, 0) + 1
                    elif tid not in faces.identity_patch or faces.identity_patch[tid][0] < middle:
                        faces.identity_patch[tid] = (item.offset, *_identity_patch(item.frame.image, box))

    for frame in reader.read_window(plan.start_time, plan.length):
        take(tracker.push(frame))
    take(tracker.finish())
    timer.add("detect", tracker.seconds)
    faces.faces_found = len(tracker.track_ids)
    return faces
