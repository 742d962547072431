"""Shared fixtures: generated media and small checkpoints (MobileNetV2, tiny LSTM) that keep tests fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml_app.detection.checkpoints import new_checkpoint, save_checkpoint
from ml_app.detection.network import ModelConfig
from ml_app.detection.preprocessing import DetectorSettings, Preprocessing

from . import media

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a skip (with the reason) when that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} is absent")
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def one_face_video(media_dir) -> Path:
    """48 frames, 480x360, 25 fps: one face drifting slightly."""
    return media.face_video(media_dir / "one_face.mp4", frames=48)


@pytest.fixture(scope="session")
def two_face_video(media_dir) -> Path:
    return media.face_video(
        media_dir / "two_faces.mp4", frames=30, width=720, height=360, faces=((30, 60, 220), (420, 80, 220))
    )


@pytest.fixture(scope="session")
def faceless_video(media_dir) -> Path:
    return media.faceless_video(media_dir / "faceless.mp4", frames=30)


def small_checkpoint(path: Path, sequence_length: int = 8, **preprocessing) -> Path:
    """A MobileNetV2 + 16-unit LSTM checkpoint on 64-pixel crops: the whole pipeline, a fraction of the cost."""
    prep = Preprocessing(image_size=64, detector=DetectorSettings(full_detect_every=8), **preprocessing)
    checkpoint = new_checkpoint(
        ModelConfig(backbone="mobilenet_v2", hidden_size=16), prep, sequence_length, pretrained="random"
    )
    save_checkpoint(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("checkpoints") / "tiny_8_frames.pt")
