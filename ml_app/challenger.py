"""A challenger beside the champion (A/B testing without serving two answers).

The registry marks at most one checkpoint per sequence length as the *challenger*, with a share of analyses
(``Checkpoint.challenger_share``, 0-100 %), or an ensemble (``Ensemble.challenger_length`` and ``challenger_share``;
a checkpoint challenger of the same length goes first). After the worker has stored the champion's result (the active
checkpoint's: the only one users see), it scores a video chosen for that share again with the challenger and stores
that answer as a ``ChallengerResult``. Which analyses are chosen follows from their id (stable, evenly spread), so a
retry makes the same choice. Analyses with an ensemble are not challenged: an ensemble answers for itself.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction

from .models import Analysis, ChallengerResult, Checkpoint, Ensemble
from .registry import activate_checkpoint

log = logging.getLogger(__name__)


def chosen(analysis_id, share: int) -> bool:
    """Whether the analysis falls in the challenger's ``share`` (percent) of analyses."""
    return uuid.UUID(str(analysis_id)).int % 100 < share


def challenger_for(analysis: Analysis) -> Checkpoint | Ensemble | None:
    """The challenger that should also score this analysis, if any: a checkpoint of its length, else an ensemble
    challenging that length."""
    if analysis.ensemble_name or analysis.checkpoint is None:
        return None
    entry: Checkpoint | Ensemble | None = (
        Checkpoint.objects.filter(sequence_length=analysis.sequence_length, challenger_share__isnull=False)
        .exclude(pk=analysis.checkpoint.pk)
        .first()
    )
    if entry is None:
        entry = Ensemble.objects.filter(
            challenger_length=analysis.sequence_length, challenger_share__isnull=False
        ).first()
    if entry is None or not chosen(analysis.pk, entry.challenger_share or 0) or not _members(entry):
        return None
    return entry


def _members(entry: Checkpoint | Ensemble) -> list[Checkpoint]:
    if isinstance(entry, Ensemble):
        members = entry.current_members()
        return members if len(members) >= 2 else []
    return [entry] if entry.file_path.is_file() else []


def score(analysis: Analysis, champion: dict, champion_seconds: float | None) -> ChallengerResult | None:
    """In the worker, after the champion's result is stored: the challenger's answer for the same video, stored
    apart. Never raises: a failing challenger is recorded as failed and the user's result is untouched."""
    entry = challenger_for(analysis)
    if entry is None:
        return None
    from .detection.files import combined_sha256

    members = _members(entry)
    is_ensemble = isinstance(entry, Ensemble)
    record = ChallengerResult(
        analysis=analysis,
        checkpoint=None if is_ensemble else entry,
        champion_name=analysis.checkpoint.name if analysis.checkpoint else "",
        champion_sha256=analysis.checkpoint_sha256,
        challenger_name=f"ensemble {entry.name}" if is_ensemble else entry.name,
        challenger_sha256=combined_sha256([m.sha256 for m in members]) if is_ensemble else members[0].sha256,
        champion_seconds=champion_seconds,
    )
    try:
        from .detection.model_loading import load_detector_model
        from .verdict_rule import analyse

        loaded = [load_detector_model(member.file_path, settings.DETECTION_DEVICE) for member in members]
        result = analyse(
            analysis.video_path,
            loaded,
            entry.name if is_ensemble else None,
            heatmaps="off",
            max_windows=settings.DETECTION_MAX_WINDOWS,
            batch_size=settings.DETECTION_BATCH_SIZE,
        )
        record.verdict = result.verdict
        record.fake_probability = result.fake_probability
        record.seconds = float(result.timings.get("total", 0.0))
        record.agrees = record.verdict == champion.get("verdict")
    except Exception as exc:  # the challenger's failure is data for the comparison, not the user's problem
        log.warning("Challenger %s failed on analysis %s: %s", entry, analysis.pk, exc)
        record.error_code = getattr(exc, "code", "internal_error")
        record.error_message = str(getattr(exc, "message", exc))[:2000]
    record.save()
    return record


def promote(entry: Checkpoint) -> None:
    """The challenger becomes the active checkpoint of its length; the former champion stays registered."""
    with transaction.atomic():
        Checkpoint.objects.filter(pk=entry.pk).update(challenger_share=None)
        entry.challenger_share = None
        activate_checkpoint(entry)
