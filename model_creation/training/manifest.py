"""The preprocess manifest: which face-crop clips exist, where they came from, and how they were made.

One JSON file (``manifest.json``, or ``manifest-shard-K-of-N.json`` for a shard) holds the :class:`Preprocessing`
the crops were made with, the window length and count, one record per video (label, dataset, split, group, method,
fps, frames kept, faces found, status and the reason when it was skipped) and per video its clips (one per person
track and window: an ``.npz`` of ``(frames, size, size, 3)`` uint8 crops exactly as ``crop_face`` returns them).
Clip paths are relative to the manifest's folder, so a folder can be moved or merged. A ``.csv`` beside it lists the
clips one per row for people who want to look with a spreadsheet; the JSON is what the tools read.

``media`` says what the records are: ``videos`` (preprocess_videos; the default, so manifests written before photos
existed read as videos) or ``images`` (preprocess_images: one record per photo, one single-frame clip per face,
sequence length 1). The two are never merged.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ml_app.detection.errors import ConfigurationError
from ml_app.detection.files import atomic_write, atomic_write_text, file_sha256
from ml_app.detection.preprocessing import Preprocessing

FORMAT = "deepfake-preprocess-manifest"
FORMAT_VERSION = 1
OK = "ok"
MEDIA = ("videos", "images")


class ManifestError(ValueError):
    """A manifest that cannot be read or combined; the message says why."""


@dataclass
class ClipRecord:
    """One face followed through one window: the unit the network scores."""

    file: str  # relative to the manifest's folder
    window: int
    start_frame: int
    track: int  # within the window
    person: int  # across the video (face descriptors linked as at inference)
    frames: int
    filled: int  # frames whose box was filled in from neighbours

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipRecord:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class VideoRecord:
    """What preprocessing made of one video, including why it yielded nothing when it did."""

    video_id: str
    video: str  # path relative to the dataset root
    source_path: str
    label: str
    dataset: str
    group: str
    split: str = ""
    method: str = ""
    original: str = ""
    status: str = OK  # ok, no_face, too_short, broken
    reason: str = ""
    fps: float = 0.0
    frame_count: int = 0
    width: int = 0
    height: int = 0
    windows: int = 0  # windows planned
    windows_with_face: int = 0
    frames_kept: int = 0
    faces_found: int = 0  # most faces seen in one window
    people: int = 0
    seconds: float = 0.0
    clips: list[ClipRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoRecord:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["clips"] = [ClipRecord.from_dict(clip) for clip in data.get("clips", [])]
        return cls(**values)


@dataclass
class Manifest:
    preprocessing: Preprocessing
    sequence_length: int
    max_windows: int
    videos: list[VideoRecord]
    root: Path  # the manifest's folder: clip files are relative to it
    sources: list[dict[str, Any]] = field(default_factory=list)
    media: str = "videos"  # one of MEDIA
    created_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    path: Path | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.media not in MEDIA:
            raise ValueError(f"media {self.media!r} is neither of {', '.join(MEDIA)}")

    def clips(self) -> list[tuple[VideoRecord, ClipRecord]]:
        return [(video, clip) for video in self.videos for clip in video.clips]

    def clip_path(self, clip: ClipRecord) -> Path:
        return self.root / clip.file

    def settings(self) -> dict[str, Any]:
        """What must agree between manifests that are merged, and between a manifest and a checkpoint."""
        return {
            "preprocessing": self.preprocessing.to_dict(),
            "sequence_length": self.sequence_length,
            "max_windows": self.max_windows,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "media": self.media,
            **self.settings(),
            "sources": self.sources,
            "videos": [video.to_dict() for video in self.videos],
        }

    def save(self, path: str | os.PathLike) -> str:
        """Write the JSON (atomically) and the CSV beside it; returns the JSON's sha256."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        self._write_csv(path.with_suffix(".csv"))
        self.path, self.root, self.sha256 = path, path.parent, file_sha256(path)
        return self.sha256

    def _write_csv(self, path: Path) -> None:
        columns = [
            "file",
            "video",
            "label",
            "dataset",
            "split",
            "group",
            "method",
            "window",
            "start_frame",
            "track",
            "person",
            "frames",
            "filled",
            "fps",
            "faces_found",
        ]

        def write(temporary: Path) -> None:
            with open(temporary, "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                writer.writerow(columns)
                for video, clip in self.clips():
                    writer.writerow(
                        [
                            clip.file,
                            video.video,
                            video.label,
                            video.dataset,
                            video.split,
                            video.group,
                            video.method,
                            clip.window,
                            clip.start_frame,
                            clip.track,
                            clip.person,
                            clip.frames,
                            clip.filled,
                            round(video.fps, 3),
                            video.faces_found,
                        ]
                    )

        atomic_write(path, write)


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write: an interrupted run never leaves half a record that a resumed run would trust."""
    atomic_write_text(path, json.dumps(data, indent=1))


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a manifest; ManifestError names the problem."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("manifest*.json"))
        if len(candidates) != 1:
            raise ManifestError(
                f"'{path}' is a folder with {len(candidates)} manifest files; name the manifest file itself."
            )
        path = candidates[0]
    if not path.is_file():
        raise ManifestError(f"Manifest '{path}' does not exist (preprocess_videos and preprocess_images write one).")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"'{path}' is not JSON: {exc}.") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(
            f"'{path}' is not a preprocess manifest (made by manage.py preprocess_videos or preprocess_images)."
        )
    if not isinstance(data.get("format_version"), int) or data["format_version"] > FORMAT_VERSION:
        raise ManifestError(f"'{path}' has manifest format {data.get('format_version')}; this version reads 1.")
    try:
        preprocessing = Preprocessing.from_dict(data["preprocessing"])
        videos = [VideoRecord.from_dict(video) for video in data["videos"]]
        manifest = Manifest(
            preprocessing=preprocessing,
            sequence_length=int(data["sequence_length"]),
            max_windows=int(data["max_windows"]),
            videos=videos,
            root=path.parent,
            sources=list(data.get("sources", [])),
            media=str(data.get("media", "videos")),
            created_at=str(data.get("created_at", "")),
        )
    except (KeyError, TypeError, ValueError, ConfigurationError) as exc:
        detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise ManifestError(f"'{path}' is damaged: {detail}.") from exc
    manifest.path, manifest.sha256 = path, file_sha256(path)
    return manifest


def merge_manifests(paths: list[Path], output: Path) -> Manifest:
    """One manifest from several (shards, or datasets preprocessed with the same settings).

    Clip paths are rewritten relative to the output's folder; settings must agree and a video may appear only once.
    """
    if not paths:
        raise ManifestError("Name at least one manifest to merge.")
    manifests = [load_manifest(path) for path in paths]
    first = manifests[0]
    for other in manifests[1:]:
        if other.media != first.media:
            raise ManifestError(
                f"'{other.path}' holds {other.media} and '{first.path}' {first.media}: manifests of photos and of "
                "videos are not merged (single-frame photo clips and video windows are different training sets)."
            )
        if other.settings() != first.settings():
            difference = sorted(key for key in first.settings() if first.settings()[key] != other.settings()[key]) or [
                "preprocessing"
            ]
            raise ManifestError(
                f"'{other.path}' was made with different settings from '{first.path}' ({', '.join(difference)}): "
                "only manifests made with the same preprocessing can be merged."
            )
    output = Path(output)
    root = output.parent.resolve()
    videos: dict[str, VideoRecord] = {}
    for manifest in manifests:
        for video in manifest.videos:
            for clip in video.clips:
                clip.file = os.path.relpath((manifest.root / clip.file).resolve(), root)
            if video.video_id in videos:
                if videos[video.video_id].to_dict() == video.to_dict():
                    continue  # the same record reached through two shard manifests of one folder
                raise ManifestError(f"Video '{video.video}' ({video.video_id}) is in more than one manifest.")
            videos[video.video_id] = video
    merged = Manifest(
        preprocessing=first.preprocessing,
        sequence_length=first.sequence_length,
        max_windows=first.max_windows,
        videos=sorted(videos.values(), key=lambda v: v.video_id),
        root=root,
        sources=[source for manifest in manifests for source in manifest.sources],
        media=first.media,
    )
    merged.save(output)
    return merged
