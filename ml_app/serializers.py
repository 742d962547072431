"""The JSON shape of an analysis for the result page's polling endpoint (the API has its own serializers)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from .jobs import STAGE_LABELS
from .models import Analysis, Checkpoint


def checkpoint_summary(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {
        "name": checkpoint.name,
        "sequence_length": checkpoint.sequence_length,
        "backbone": checkpoint.backbone,
        "accuracy": checkpoint.accuracy,
        "untrained": checkpoint.untrained,
        "sha256": checkpoint.sha256,
    }


def _strip_boxes(result: dict[str, Any]) -> dict[str, Any]:
    """The result without per-frame boxes, which the page does not draw."""
    windows = [
        {**window, "tracks": [{k: v for k, v in t.items() if k != "boxes"} for t in window["tracks"]]}
        for window in result.get("windows", [])
    ]
    return {**result, "windows": windows}


def analysis_state(analysis: Analysis, include_boxes: bool = False) -> dict[str, Any]:
    """Status, progress and, once done, the result, with the URLs of the media that go with it."""
    base = reverse("ml_app:analysis", args=[analysis.pk])
    data: dict[str, Any] = {
        "id": str(analysis.pk),
        "url": base,
        "status": analysis.status,
        "stage": analysis.stage,
        "stage_label": STAGE_LABELS.get(analysis.stage, analysis.stage),
        "progress": analysis.progress,
        "original_name": analysis.original_name,
        "sequence_length": analysis.sequence_length,
        "checkpoint": checkpoint_summary(analysis.checkpoint),
        "attempts": analysis.attempts,
        "created_at": analysis.created_at.isoformat(),
        "finished_at": analysis.finished_at.isoformat() if analysis.finished_at else None,
        "error": {"code": analysis.error_code, "message": analysis.error_message} if analysis.error_message else None,
        "video_url": reverse("ml_app:analysis-video", args=[analysis.pk]),
        "crops_url": base + "crops/",
        "reused": analysis.reused_from_id is not None,
        "result": None,
        "timings": analysis.timings,
    }
    if analysis.status == Analysis.Status.DONE and analysis.result:
        data["result"] = analysis.result if include_boxes else _strip_boxes(analysis.result)
    return data
