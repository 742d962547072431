"""The structured result of an analysis: verdict, probabilities, evidence per window and per person, timings.

``to_dict`` gives plain JSON types (the command line's ``--json``, the database, the API); the face crops themselves
stay as arrays on the object and are written to disk by ``save_crops`` only when someone wants to look at them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from .calibration import Thresholds, score_rule

Verdict = Literal["REAL", "FAKE", "INCONCLUSIVE"]
WindowStatus = Literal["scored", "no_face", "face_lost", "video_ended"]


@dataclass
class Heatmap:
    """A track's Grad-CAM heat map (``heatmaps.py``): where, in the frame that pushed its score hardest towards FAKE,
    the pixels that pushed it lay. It shows what moved the network's score, not which part of the face is fake."""

    frame: int  # index into the track's crops; the video frame is the window's start_frame + frame
    map: np.ndarray = field(repr=False)  # (S, S) float32 in [0, 1]: the crop's size, 1 where the push was strongest
    overlay: np.ndarray = field(repr=False)  # (S, S, 3) uint8 RGB: that frame's crop with the map blended over it


@dataclass
class TrackScore:
    """One face followed through one window, and the network's score for it."""

    track_id: int  # within the window
    person_id: int  # across the video
    fake_probability: float  # calibrated (the raw score when the checkpoint has no calibration)
    boxes: list[list[int]]  # per frame, [x0, y0, x1, y1] in displayed-frame pixels
    filled_frames: int  # frames whose box was filled in from neighbours rather than detected
    crops: np.ndarray | None = field(default=None, repr=False)  # (N, S, S, 3) uint8 RGB, as fed (before colour swap)
    raw_probability: float = float("nan")  # the network's own output
    heatmap: Heatmap | None = field(default=None, repr=False)  # made after the verdict, when asked (heatmaps.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "person_id": self.person_id,
            "fake_probability": round(self.fake_probability, 6),
            "raw_probability": round(self.raw_probability, 6),
            "filled_frames": self.filled_frames,
            "boxes": self.boxes,
        }


@dataclass
class WindowResult:
    index: int
    start_frame: int
    end_frame: int  # inclusive
    start_time: float
    end_time: float  # time of the last frame
    frames: int  # frames decoded
    status: WindowStatus
    faces_found: int  # distinct faces seen in the window, complete or not
    tracks: list[TrackScore] = field(default_factory=list)
    frames_without_face: list[int] = field(default_factory=list)  # video frame indices with no face at all
    fake_probability: float | None = None  # set by decision.decide from the tracks' scores
    raw_probability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        probability = self.fake_probability
        return {
            "index": self.index,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_time": round(self.start_time, 3),
            "end_time": round(self.end_time, 3),
            "frames": self.frames,
            "status": self.status,
            "faces_found": self.faces_found,
            "fake_probability": None if probability is None else round(probability, 6),
            "raw_probability": None if self.raw_probability is None else round(self.raw_probability, 6),
            "tracks": [t.to_dict() for t in self.tracks],
            "frames_without_face": self.frames_without_face,
        }


@dataclass
class PersonResult:
    """One person, linked across windows by face descriptor."""

    person_id: int
    windows: list[int]
    fake_probability: float  # the mean of their windows' calibrated probabilities
    verdict: Verdict
    reason: str | None = None  # for INCONCLUSIVE: "uncertain" or "windows_disagree"
    window_probabilities: list[float] = field(default_factory=list)  # per window, in the order of ``windows``
    disagreement: float = 0.0  # the largest minus the smallest window probability
    raw_probability: float = float("nan")
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # RGB uint8

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "windows": self.windows,
            "fake_probability": round(self.fake_probability, 6),
            "raw_probability": round(self.raw_probability, 6),
            "window_probabilities": [round(p, 6) for p in self.window_probabilities],
            "disagreement": round(self.disagreement, 6),
            "verdict": self.verdict,
            "reason": self.reason,
        }


@dataclass
class AnalysisResult:
    verdict: Verdict
    sequence_length: int
    video: dict[str, Any]
    checkpoint: dict[str, Any]
    fake_probability: float | None = None  # calibrated, of the most suspicious person
    confidence: float | None = None  # probability of the verdict's class (REAL or FAKE only)
    thresholds: Thresholds = field(default_factory=lambda: score_rule(None).thresholds)
    calibration: dict[str, Any] = field(default_factory=lambda: score_rule(None).describe())  # what the number means
    raw_probability: float | None = None  # the same rule on the network's raw scores
    reason: dict[str, str] | None = None  # for INCONCLUSIVE: {"code", "message"}
    windows: list[WindowResult] = field(default_factory=list)
    people: list[PersonResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    crop_files: dict[str, Any] = field(default_factory=dict)
    ensemble: dict[str, Any] | None = None  # for an ensemble: its name, how it combines, and each member's answer
    heatmaps: dict[str, Any] = field(default_factory=dict)  # how the heat maps were made (heatmaps.py); {}: not asked

    def heatmap_list(self) -> list[dict[str, int]]:
        """Which tracks have a heat map, and of which frame (the maps themselves are files, see ``save_crops``)."""
        return [
            {
                "window": w.index,
                "track_id": t.track_id,
                "frame": t.heatmap.frame,
                "video_frame": w.start_frame + t.heatmap.frame,
            }
            for w in self.windows
            for t in w.tracks
            if t.heatmap is not None
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "fake_probability": None if self.fake_probability is None else round(self.fake_probability, 6),
            "raw_probability": None if self.raw_probability is None else round(self.raw_probability, 6),
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "thresholds": self.thresholds.to_dict(),
            "calibration": self.calibration,
            "sequence_length": self.sequence_length,
            "windows_scored": sum(1 for w in self.windows if w.status == "scored"),
            "windows": [w.to_dict() for w in self.windows],
            "people": [p.to_dict() for p in self.people],
            "video": self.video,
            "checkpoint": self.checkpoint,
            "timings": {stage: round(seconds, 4) for stage, seconds in self.timings.items()},
            "warnings": self.warnings,
            "crop_files": self.crop_files,
            "ensemble": self.ensemble,
            "heatmaps": {**self.heatmaps, "maps": self.heatmap_list()} if self.heatmaps else None,
        }

    def save_crops(self, directory: str | Path, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
        """Write what the network saw: per window and face a strip of all its crops and the middle one as a
        thumbnail, and a thumbnail per person; where a track has a heat map, that map over its frame's crop (PNG)
        and the crop alone beside it. ``progress`` hears the fraction of windows written.

        Returns (and records in ``crop_files``) the paths, relative to ``directory``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, Any] = {"windows": {}, "people": {}}
        for done, window in enumerate(self.windows):
            if progress is not None:
                progress(done / max(1, len(self.windows)))
            for track in window.tracks:
                if track.crops is None or not len(track.crops):
                    continue
                stem = f"window{window.index:02d}_face{track.track_id}"
                strip = np.concatenate(list(track.crops), axis=1)
                middle = track.crops[len(track.crops) // 2]
                cv2.imwrite(str(directory / f"{stem}.jpg"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), _JPEG)
                cv2.imwrite(str(directory / f"{stem}_thumb.jpg"), cv2.cvtColor(middle, cv2.COLOR_RGB2BGR), _JPEG)
                names = {"strip": f"{stem}.jpg", "thumb": f"{stem}_thumb.jpg"}
                files["windows"].setdefault(str(window.index), {})[str(track.track_id)] = names
        for person in self.people:
            if person.thumbnail is None:
                continue
            name = f"person{person.person_id}.jpg"
            cv2.imwrite(str(directory / name), cv2.cvtColor(person.thumbnail, cv2.COLOR_RGB2BGR))
            files["people"][str(person.person_id)] = name
        self.crop_files = files
        self.save_heatmaps(directory)
        if progress is not None:
            progress(1.0)
        return files

    def save_heatmaps(self, directory: str | Path) -> dict[str, Any]:
        """Write the heat maps drawn since ``save_crops`` (each over its frame's crop, PNG, and the crop alone) and
        add their names to ``crop_files``: the site saves the verdict's evidence first and the maps when they come."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        windows = self.crop_files.setdefault("windows", {})
        for window in self.windows:
            for track in window.tracks:
                if track.heatmap is None or track.crops is None:
                    continue
                stem = f"window{window.index:02d}_face{track.track_id}"
                names = {"heatmap": f"{stem}_heatmap.png", "heatmap_crop": f"{stem}_heatmap_crop.jpg"}
                overlay, crop = track.heatmap.overlay, track.crops[track.heatmap.frame]
                cv2.imwrite(str(directory / names["heatmap"]), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(directory / names["heatmap_crop"]), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), _JPEG)
                windows.setdefault(str(window.index), {}).setdefault(str(track.track_id), {}).update(names)
        return self.crop_files


_JPEG = [cv2.IMWRITE_JPEG_QUALITY, 90]
