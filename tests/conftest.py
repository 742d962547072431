"""Shared fixtures: generated media and small checkpoints (MobileNetV2, tiny LSTM) that keep tests fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml_app.detection.checkpoints import new_checkpoint, save_checkpoint
from ml_app.detection.network import ModelConfig
from ml_app.detection.preprocessing import DetectorSettings, Preprocessing

from . import media

# Worker processes started by the tests analyse without heat maps unless a test asks for them: the default
# (`flagged`) would add a Grad-CAM pass (the grad-cam import, 2-3 s, and a backward pass per window) to every
# analysis of the suite's untrained checkpoints. The modes themselves are tested in tests/test_heatmaps.py and the
# browser test.
os.environ.setdefault("DETECTION_HEATMAPS", "off")

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


def small_frame_checkpoint(path: Path, **preprocessing) -> Path:
    """A MobileNetV2 frame model (no LSTM, sequence length 1) on 64-pixel crops: what photos are scored with."""
    prep = Preprocessing(image_size=64, detector=DetectorSettings(full_detect_every=8), **preprocessing)
    checkpoint = new_checkpoint(ModelConfig(backbone="mobilenet_v2", head="frame"), prep, 1, pretrained="random")
    save_checkpoint(checkpoint, path)
    return path


@pytest.fixture(scope="session")
def frame_checkpoint(tmp_path_factory) -> Path:
    return small_frame_checkpoint(tmp_path_factory.mktemp("checkpoints") / "tiny_frame_model.pt")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("checkpoints") / "tiny_8_frames.pt")


# --- the site: isolated media, models folder and job queue ----------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def static_files_from_source():
    """Serve static files from static/ (no collectstatic manifest in a fresh checkout); the production storage has
    its own test."""
    from django.conf import settings
    from django.test import override_settings

    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    override = override_settings(STORAGES=storages, WHITENOISE_USE_FINDERS=True)
    override.enable()
    yield
    override.disable()


@pytest.fixture(scope="session", autouse=True)
def isolated_queue(tmp_path_factory):
    """Point the Celery app at a queue folder of the test session, so no test message reaches a real worker."""
    from project_settings.broker import filesystem_transport_options
    from project_settings.celery import app

    folder = tmp_path_factory.mktemp("queue")
    app.close()
    app.conf.broker_url = "filesystem://"
    app.conf.broker_transport_options = filesystem_transport_options(folder)
    return folder


@pytest.fixture
def site_dirs(settings, tmp_path):
    """Fresh media and models folders for one test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODELS_DIR = tmp_path / "models"
    settings.MODEL_MAPPING = {}
    settings.MEDIA_ROOT.mkdir()
    settings.MODELS_DIR.mkdir()
    return tmp_path


@pytest.fixture(scope="session")
def site_checkpoint(tmp_path_factory) -> Path:
    """The tiny network for 10-frame windows (the site offers 10, 20, 40, 60, 80 and 100)."""
    return small_checkpoint(tmp_path_factory.mktemp("checkpoints") / "tiny_10_frames.pt", sequence_length=10)


@pytest.fixture
def active_checkpoint(site_dirs, site_checkpoint, db):
    """The tiny 10-frame checkpoint, registered and active."""
    from ml_app.models import Checkpoint
    from ml_app.registry import register

    entry = register(site_checkpoint, Checkpoint.Source.MODELS_DIR)
    assert entry.is_active
    return entry


@pytest.fixture
def active_frame_checkpoint(active_checkpoint, frame_checkpoint):
    """The tiny frame model registered and active for photos, beside the active 10-frame checkpoint."""
    from ml_app.models import Checkpoint
    from ml_app.registry import register

    entry = register(frame_checkpoint, Checkpoint.Source.MODELS_DIR)
    assert entry.is_active and entry.sequence_length == 1
    return entry
