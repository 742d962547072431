"""A small, learnable dataset of face-crop clips written straight into a manifest (no face detection needed).

REAL clips are the astronaut's portrait with a little noise and drift; FAKE clips are the same with the colour
channels of the face's centre swapped, a blending artefact a network learns in a few steps. Each video is its own
group, so the trainer's group split has something to do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml_app.detection.preprocessing import Preprocessing
from model_creation.training.manifest import ClipRecord, Manifest, VideoRecord

from . import media


def synthetic_manifest(
    root: Path,
    videos_per_label: int = 6,
    clips_per_video: int = 2,
    length: int = 6,
    size: int = 64,
    dataset: str = "synthetic",
    preprocessing: Preprocessing | None = None,
    seed: int = 0,
) -> Path:
    prep = preprocessing or Preprocessing(image_size=size)
    face = media.portrait(size)
    rng = np.random.default_rng(seed)
    videos = []
    for label in ("REAL", "FAKE"):
        for number in range(videos_per_label):
            video_id = f"{dataset}-{label.lower()}{number}"
            record = VideoRecord(
                video_id=video_id,
                video=f"{label.lower()}/{number}.mp4",
                source_path="",
                label=label,
                dataset=dataset,
                group=f"{dataset}:{label.lower()}{number}",
                method="swap" if label == "FAKE" else "",
                fps=25.0,
                frame_count=100,
                windows=clips_per_video,
                windows_with_face=clips_per_video,
                faces_found=1,
                people=1,
                frames_kept=clips_per_video * length,
            )
            for window in range(clips_per_video):
                frames = []
                for t in range(length):
                    image = np.roll(face, (number + window + t) % 5, axis=1).astype(np.int16)
                    image += rng.integers(-8, 9, image.shape, dtype=np.int16)
                    if label == "FAKE":
                        c, r = size // 2, size // 5
                        image[c - r : c + r, c - r : c + r] = image[c - r : c + r, c - r : c + r, ::-1]
                    frames.append(np.clip(image, 0, 255).astype(np.uint8))
                name = f"clips/{video_id}/w{window:03d}_t0.npz"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                # the face box in the video's pixels, as preprocessing stores it: 40 to 90 px wide by video
                side = 40 + 10 * number
                boxes = np.array([[100, 100, 100 + side, 100 + side]] * length, dtype=np.int32)
                np.savez_compressed(root / name, crops=np.stack(frames), boxes=boxes)
                record.clips.append(
                    ClipRecord(
                        file=name, window=window, start_frame=window * 20, track=0, person=0, frames=length, filled=0
                    )
                )
            videos.append(record)
    manifest = Manifest(
        preprocessing=prep, sequence_length=length, max_windows=clips_per_video, videos=videos, root=root
    )
    path = root / "manifest.json"
    manifest.save(path)
    return path
