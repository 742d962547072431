"""Analysing a photo: every face in it scored by a frame model, decided by the same rule as a video's people.

A photo is read by :func:`.images.read_image` (allow-list, pixel limit, EXIF orientation), its faces found by the
checkpoint's own detector and cropped by ``crop_face`` exactly as the frame model's training photos were, and the
result is an :class:`AnalysisResult` like a video's: one "window" (the photo) whose tracks are the faces, each face
its own person, so the result page, the API and the verdict rule need nothing of their own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .calibration import ScoreRule, score_rule
from .decision import decide
from .defaults import DEFAULT_BATCH_SIZE
from .errors import ConfigurationError
from .faces import Detection, FaceDetector
from .images import DEFAULT_MAX_PIXELS, read_image
from .model_loading import LoadedModel
from .prediction import checkpoint_warnings, display_crops, score_of
from .preprocessing import Preprocessing, crop_face
from .results import AnalysisResult, TrackScore, WindowResult
from .scoring import BatchScorer
from .stages import Progress, Stage
from .timing import StageTimer


@dataclass(frozen=True)
class PhotoFace:
    """One face of a photo: where the detector found it and the crop the network sees (model's colour order)."""

    detection: Detection
    crop: np.ndarray


def find_photo_faces(image: np.ndarray, detector: FaceDetector, prep: Preprocessing) -> list[PhotoFace]:
    """The faces of an upright RGB photo, largest first, at most the detector's ``max_faces``, each cropped as
    ``prep`` says. ``preprocess_images`` and ``analyze_image`` both call this, so training and analysis crop alike."""
    found = detector.detect(image)[: prep.detector.max_faces]
    return [PhotoFace(detection, crop_face(image, detection.box, prep)) for detection in found]


def require_frame_model(loaded: LoadedModel) -> None:
    """Photos are scored by frame models only: an LSTM trained on N-frame sequences never saw a single frame."""
    checkpoint = loaded.checkpoint
    if not checkpoint.architecture.is_frame_model:
        raise ConfigurationError(
            f"The checkpoint '{checkpoint.name}' is a {checkpoint.sequence_length}-frame sequence model; photos are "
            "analysed by a frame model (sequence length 1: train one with train_model --frame-model, or map one "
            'under "1" in MODEL_MAPPING).'
        )


def analyze_image(
    path: str | os.PathLike,
    loaded: LoadedModel,
    *,
    rule: ScoreRule | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_crops: bool = True,
    progress: Progress | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> AnalysisResult:
    """Analyse one photo with a frame model. Raises an ImageError for a file that is not a usable photo and a
    ConfigurationError for a checkpoint that is not a frame model."""
    started = time.perf_counter()
    require_frame_model(loaded)
    timer = StageTimer()
    report = progress or (lambda stage, fraction: None)
    checkpoint = loaded.checkpoint
    prep = checkpoint.preprocessing
    rule = rule or score_rule(checkpoint.calibration)
    report(Stage.PROBE, 0.0)
    with timer.stage("decode"):
        image, info = read_image(path, max_pixels)
    result = AnalysisResult(
        verdict="INCONCLUSIVE",
        sequence_length=checkpoint.sequence_length,
        video=info.to_dict(),
        checkpoint=checkpoint.describe(),
        thresholds=rule.thresholds,
        calibration=rule.describe(),
        warnings=checkpoint_warnings(checkpoint, rule),
    )
    report(Stage.WINDOWS, 0.2)
    with timer.stage("detect"):
        faces = find_photo_faces(image, loaded.detector, prep)
    photo = WindowResult(
        index=0,
        start_frame=0,
        end_frame=0,
        start_time=0.0,
        end_time=0.0,
        frames=1,
        status="scored" if faces else "no_face",
        faces_found=len(faces),
    )
    result.windows = [photo]
    report(Stage.NETWORK, 0.6)
    scorer = BatchScorer(loaded, batch_size, timer)
    for number, face in enumerate(faces):
        crops = face.crop[None]
        track = TrackScore(
            track_id=number,
            person_id=number,
            fake_probability=float("nan"),
            boxes=[face.detection.box.rounded().to_list()],
            filled_frames=0,
            crops=display_crops(crops, prep.colour_order) if keep_crops else None,
        )
        photo.tracks.append(track)
        scorer.add(crops, score_of(track, rule))
    scorer.finish()
    decide(result, {(0, track.track_id): track.track_id for track in photo.tracks})
    if not faces:
        result.reason = {
            "code": "no_face",
            "message": f"No face was found in the photo ({info.width} x {info.height} pixels). Faces that are very "
            "small, dark, turned away or hidden cannot be analysed.",
        }
    report(Stage.DONE, 1.0)
    result.timings = {**timer.seconds, "total": time.perf_counter() - started}
    return result
