"""Several checkpoints, one answer: each member analyses the video on its own windows, and their calibrated video
probabilities are combined (the mean), with the members' thresholds averaged unless given.

Members of different lengths see different windows, and members of different training runs see the same ones
differently; that is the point (the training guides: "train 3 models with different seeds, average their
predictions"). Members that disagree strongly (``decision.DISAGREEMENT`` apart) are conflicting evidence: the
ensemble is then not called REAL on their mean, as for one person's windows. The combined result carries the first
scored member's windows and people as its evidence, and every member's own score and verdict.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from .calibration import ScoreRule, Thresholds
from .decision import between_thresholds, person_verdict
from .files import combined_sha256 as identity
from .model_loading import LoadedModel
from .prediction import analyze_video
from .results import AnalysisResult
from .stages import Progress, Stage

COMBINE = "mean"


@dataclass(frozen=True)
class Member:
    """A checkpoint of the ensemble, with the rule its scores are calibrated and judged by."""

    loaded: LoadedModel
    rule: ScoreRule


def _member_progress(progress: Progress | None, index: int, count: int) -> Progress | None:
    if progress is None:
        return None

    def report(stage: Stage, fraction: float) -> None:
        if stage is not Stage.DONE:
            progress(stage, (index + fraction) / count)

    return report


def mean_thresholds(members: Sequence[Thresholds]) -> Thresholds:
    """The members' thresholds averaged (each is a calibrated probability on the same scale)."""
    return Thresholds(fmean(t.fake for t in members), fmean(t.real for t in members), "ensemble mean")


def member_summary(result: AnalysisResult) -> dict[str, Any]:
    checkpoint = result.checkpoint
    return {
        "name": checkpoint.get("name"),
        "sha256": checkpoint.get("sha256"),
        "sequence_length": result.sequence_length,
        "verdict": result.verdict,
        "reason": result.reason,
        "fake_probability": result.fake_probability,
        "raw_probability": result.raw_probability,
        "thresholds": result.thresholds.to_dict(),
        "calibrated": bool(result.calibration.get("calibrated")),
        "windows_scored": sum(1 for window in result.windows if window.status == "scored"),
    }


def combine(
    name: str, results: Sequence[AnalysisResult], rules: Sequence[ScoreRule], thresholds: Thresholds | None = None
) -> AnalysisResult:
    """The ensemble's result from its members' results (in member order)."""
    scored = [result for result in results if result.fake_probability is not None]
    base = scored[0] if scored else results[0]
    chosen = thresholds or mean_thresholds([rule.thresholds for rule in rules])
    combined = AnalysisResult(
        verdict="INCONCLUSIVE",
        sequence_length=base.sequence_length,
        video=base.video,
        checkpoint=base.checkpoint,
        thresholds=chosen,
        windows=base.windows,
        people=base.people,
        crop_files=base.crop_files,
    )
    all_calibrated = all(rule.calibrated for rule in rules)
    combined.calibration = {
        **base.calibration,
        "calibrated": all_calibrated,
        "meaning": f"mean of {len(results)} checkpoints' "
        + ("calibrated probabilities" if all_calibrated else "scores (not all calibrated)")
        + " that the most suspicious face sequence is fake",
    }
    combined.ensemble = {
        "name": name,
        "combine": COMBINE,
        "members": [member_summary(result) for result in results],
        "evidence_from": base.checkpoint.get("name"),
        "identity": identity([str(result.checkpoint.get("sha256")) for result in results]),
    }
    for result in results:
        combined.warnings += [f"{result.checkpoint.get('name')}: {warning}" for warning in result.warnings]
        for stage, seconds in result.timings.items():
            combined.timings[stage] = combined.timings.get(stage, 0.0) + seconds
    if not scored:
        combined.reason = base.reason
        return combined
    probabilities = [float(result.fake_probability) for result in scored]  # type: ignore[arg-type]
    combined.fake_probability = fmean(probabilities)
    raws = [result.raw_probability for result in scored if result.raw_probability is not None]
    combined.raw_probability = fmean(raws) if raws else None
    verdict, reason = person_verdict(probabilities, chosen)
    combined.verdict = verdict
    if verdict == "INCONCLUSIVE":
        low, high = min(probabilities), max(probabilities)
        combined.reason = (
            {
                "code": "members_disagree",
                "message": f"The {len(scored)} checkpoints disagree: from {low:.2f} to {high:.2f} fake probability. "
                "Conflicting evidence is not averaged into a REAL verdict.",
            }
            if reason == "windows_disagree"
            else {
                "code": "uncertain",
                "message": between_thresholds(
                    combined.fake_probability, chosen, f"mean fake probability of {len(scored)} checkpoints"
                ),
            }
        )
    else:
        probability = combined.fake_probability
        combined.confidence = probability if verdict == "FAKE" else 1.0 - probability
    if len(scored) < len(results):
        combined.warnings.append(f"{len(results) - len(scored)} of {len(results)} checkpoints scored no window.")
    return combined


def analyze_with_ensemble(
    path: str | os.PathLike,
    name: str,
    members: Sequence[Member],
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> AnalysisResult:
    """Analyse ``path`` with every member (``options`` as for ``analyze_video``) and combine their answers."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    results = [
        analyze_video(
            path, member.loaded, rule=member.rule, progress=_member_progress(progress, index, len(members)), **options
        )
        for index, member in enumerate(members)
    ]
    combined = combine(name, results, [member.rule for member in members], thresholds)
    if progress is not None:
        progress(Stage.DONE, 1.0)
    return combined
