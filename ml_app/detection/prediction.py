"""Analysing a video: sample windows over its whole length, follow faces, score each face sequence, decide.

This module only puts the jobs in order; each has its own home: checkpoints are loaded by :mod:`.model_loading`,
windows read and faces followed by :mod:`.windows`, face sequences scored by :mod:`.scoring`, and the verdict decided
by :mod:`.decision`, the rule that preprocessing and ``evaluate_model`` share.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext

import numpy as np

from .calibration import ScoreRule, score_rule
from .checkpoints import CheckpointFile
from .decision import decide, link_people, too_short_reason
from .defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_WINDOWS
from .descriptor_process import WindowDescriptors
from .model_loading import LoadedModel
from .prefetch import WindowPrefetcher
from .results import AnalysisResult, TrackScore, WindowResult
from .scoring import BatchScorer, ScoreSink
from .stages import Progress, Stage
from .timing import StageTimer
from .video import VideoInfo, VideoReader, plan_windows, probe_video
from .windows import FrameSource, WindowFaces, collect_window_faces


def _no_progress(stage: Stage, fraction: float) -> None:
    """The progress callback when nobody listens."""


def display_crops(crops: np.ndarray, colour_order: str) -> np.ndarray:
    """Crops as people see them (RGB), whatever order the network was fed them in."""
    return crops[..., ::-1].copy() if colour_order == "BGR" else crops


def _track(faces: WindowFaces, track_id: int, sequence: np.ndarray, colour_order: str, keep_crops: bool) -> TrackScore:
    """A complete track's evidence; its score arrives from the scorer. Crops are kept in RGB for display."""
    crops = display_crops(sequence, colour_order) if keep_crops else None
    return TrackScore(
        track_id=track_id,
        person_id=-1,
        fake_probability=float("nan"),
        boxes=faces.track_boxes(track_id),
        filled_frames=faces.filled.get(track_id, 0),
        crops=crops,
    )


def score_of(track: TrackScore, rule: ScoreRule) -> ScoreSink:
    """Where the scorer puts a track's score: kept raw, and calibrated by the checkpoint's rule."""

    def receive(probability: float) -> None:
        track.raw_probability = probability
        track.fake_probability = rule.probability(probability)

    return receive


def checkpoint_warnings(checkpoint: CheckpointFile, rule: ScoreRule) -> list[str]:
    """What a result must say about the checkpoint before its numbers: untrained, or scores that are not calibrated."""
    if checkpoint.untrained:
        return [f"The checkpoint '{checkpoint.name}' is untrained (random weights): its verdict means nothing."]
    if not rule.calibrated:
        return [
            f"The checkpoint '{checkpoint.name}' carries no calibration: its scores are the network's raw output, "
            f"not calibrated probabilities, and the thresholds ({rule.thresholds.real:g} / {rule.thresholds.fake:g}) "
            "were not chosen on validation data. Calibrate it with 'manage.py calibrate_model'."
        ]
    return []


def _truncation_warning(ended_at: float | None, info: VideoInfo) -> str | None:
    if ended_at is not None and ended_at + 1.0 < info.duration:
        return (
            f"Decoding stopped at {ended_at:.1f} s although the file says it lasts {info.duration:.1f} s: "
            "it is probably truncated. Only the part that decodes was analysed."
        )
    return None


def analyze_video(
    path: str | os.PathLike,
    loaded: LoadedModel,
    *,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rule: ScoreRule | None = None,
    keep_crops: bool = True,
    progress: Progress | None = None,
    info: VideoInfo | None = None,
    overlap_network: bool = True,
    overlap_decoding: bool = True,
    describe_in_process: bool = True,
) -> AnalysisResult:
    """Analyse one video with a loaded checkpoint. Raises a VideoError for files that are not usable video.

    A frame model (sequence length 1) scores windows of ``FRAME_MODEL_WINDOW`` frames by the mean of their frames'
    probabilities. ``info`` is the video's probe when the caller already has it (validation usually probes first).
    ``rule`` is the calibration and thresholds (default: the checkpoint's own, see :func:`.calibration.score_rule`).
    With ``overlap_network`` the network scores finished windows while later ones are decoded and searched for faces;
    with ``overlap_decoding`` a thread decodes the next frames while faces are searched for in the current ones; with
    ``describe_in_process`` the descriptors that link people are computed in a helper process as windows finish
    (``descriptor_process``). The stage timings then add up to more than the total. None of them changes a result.
    """
    started = time.perf_counter()
    timer = StageTimer()
    report = progress or _no_progress
    checkpoint = loaded.checkpoint
    prep = checkpoint.preprocessing
    length = checkpoint.window_length
    rule = rule or score_rule(checkpoint.calibration)

    report(Stage.PROBE, 0.0)
    with timer.stage("probe"):
        info = info or probe_video(path)
    plans = plan_windows(info, length, max_windows)
    result = AnalysisResult(
        verdict="INCONCLUSIVE",
        sequence_length=length,
        video=info.to_dict(),
        checkpoint=checkpoint.describe(),
        thresholds=rule.thresholds,
        calibration=rule.describe(),
    )
    result.warnings.extend(checkpoint_warnings(checkpoint, rule))
    if not plans:
        result.reason = too_short_reason(info.frame_count, length)
        result.timings = {**timer.seconds, "total": time.perf_counter() - started}
        return result

    scorer = BatchScorer(loaded, batch_size, timer, background=overlap_network)
    descriptors = WindowDescriptors(loaded.detector, use_process=describe_in_process)
    collected: list[WindowResult] = []
    with VideoReader(info, timer=timer) as reader:
        source: FrameSource
        with WindowPrefetcher(reader, plans, timer) if overlap_decoding else nullcontext(reader) as source:
            for number, plan in enumerate(plans):
                report(Stage.WINDOWS, number / len(plans))
                faces = collect_window_faces(source, plan, loaded.detector, prep, timer)
                complete = faces.complete_tracks(prep.detector.min_detected_fraction)
                window = faces.to_window(complete)
                for track_id in complete:
                    sequence = faces.sequence(track_id)
                    track = _track(faces, track_id, sequence, prep.colour_order, keep_crops)
                    window.tracks.append(track)
                    scorer.add(sequence, score_of(track, rule))
                collected.append(window)
                descriptors.add(window.index, {t.track_id: faces.identity(t.track_id) for t in window.tracks})
        warning = _truncation_warning(reader.ended_at, info)
        if warning:
            result.warnings.append(warning)
    report(Stage.NETWORK, 0.95)
    scorer.flush()  # the last sequences are scored while the last faces are described for linking people

    with timer.stage("detect"):
        people_of = link_people(descriptors.collect())
    scorer.finish()
    result.windows = collected
    decide(result, people_of)
    report(Stage.DONE, 1.0)
    result.timings = {**timer.seconds, "total": time.perf_counter() - started}
    return result
