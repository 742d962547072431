"""Preprocessed crops packed small enough to carry to another machine (a lent GPU), and unpacked there.

A preprocessing folder keeps every frame of every clip losslessly (about 1 GB for the recipe's videos at 112 px).
A pack keeps what a frame model trains and is tested on, compressed as JPEG: the middle ``frames`` frames of every
video clip (a frame model scores a window's middle frames) and every photo face, with the manifests, in one
``.tar`` of JPEG files. Unpacked, it is again preprocessing folders with manifests, which ``train_model`` and
``evaluate_model`` read as usual. JPEG changes the pixels slightly (quality 95): a model trained from a pack is a
sibling of the recipe's, not the same model, and its card says so.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from .crop_cache import read_frames
from .extract import CLIPS_DIR, save_clip
from .manifest import load_manifest

JPEG_QUALITY = 95


def _jpeg(frame_rgb: np.ndarray) -> bytes:
    bgr = np.ascontiguousarray(frame_rgb[:, :, ::-1])
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("a crop could not be encoded as JPEG")
    return data.tobytes()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def pack(folders: dict[str, Path], target: Path, frames: int = 10) -> dict[str, int]:
    """Pack each named preprocessing folder (``{"clips": ..., "photos": ...}``) into ``target``; returns the frames
    packed per folder. The colour order is the manifest's (crops are stored as the model reads them)."""
    counts: dict[str, int] = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w") as archive:
        for name, folder in folders.items():
            manifest = load_manifest(folder / "manifest.json")
            videos = []
            boxes: dict[str, list] = {}
            counts[name] = 0
            for video in manifest.videos:
                clips = []
                for clip in video.clips:
                    stored = read_frames(manifest.clip_path(clip))
                    start = max(0, (len(stored) - frames) // 2)
                    kept = stored[start : start + frames]
                    with np.load(manifest.clip_path(clip)) as data:  # the face boxes: photo degradation reads them
                        if "boxes" in data.files:
                            boxes[clip.file] = data["boxes"][start : start + frames].tolist()
                    for index, frame in enumerate(kept):
                        _add(archive, f"{name}/{clip.file}/{index:03d}.jpg", _jpeg(frame))
                    counts[name] += len(kept)
                    clips.append(replace(clip, frames=len(kept)))
                videos.append(replace(video, clips=clips))
            data = {**manifest.to_dict(), "videos": [video.to_dict() for video in videos]}
            data["sequence_length"] = min(manifest.sequence_length, frames)
            _add(archive, f"{name}/manifest.json", json.dumps(data).encode())
            _add(archive, f"{name}/boxes.json", json.dumps(boxes).encode())
    return counts


def unpack(source: Path, destination: Path) -> dict[str, Path]:
    """The pack's folders rebuilt under ``destination`` (clip files of the decoded JPEG frames); their manifests."""
    frames: dict[str, dict[int, np.ndarray]] = {}
    manifests: dict[str, bytes] = {}
    boxes: dict[str, list] = {}
    with tarfile.open(source) as archive:
        for member in archive:
            handle = archive.extractfile(member)
            if handle is None:
                continue
            data = handle.read()
            if member.name.endswith("/manifest.json"):
                manifests[member.name.split("/", 1)[0]] = data
                continue
            if member.name.endswith("/boxes.json"):
                folder = member.name.split("/", 1)[0]
                boxes |= {f"{folder}/{clip}": value for clip, value in json.loads(data).items()}
                continue
            clip_file, number = member.name.rsplit("/", 1)
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"'{member.name}' in '{source}' is not a JPEG image")
            frames.setdefault(clip_file, {})[int(number.split(".")[0])] = image[:, :, ::-1]
    for clip_file, by_number in frames.items():
        path = destination / clip_file
        if path.parent.parent.name != CLIPS_DIR:
            raise ValueError(f"'{clip_file}' is not a clip file of a preprocessing folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        crops = np.stack([by_number[index] for index in sorted(by_number)])
        box = np.array(boxes.get(clip_file) or np.zeros((len(crops), 4)), dtype=np.int32)
        save_clip(path, crops, np.zeros(len(crops), np.int64), box)
    written = {}
    for name, data in manifests.items():
        (destination / name).mkdir(parents=True, exist_ok=True)
        (destination / name / "manifest.json").write_bytes(data)
        written[name] = destination / name / "manifest.json"
    return written
