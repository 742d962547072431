"""Which trained model the site uses for each shipped length, and which length is the site's default, by measurement.

The recipe trains a frame model (each frame scored alone, a window's score the mean of its frames) and sequence models
(an LSTM over 10, 20 or 40 frames). The 10-frame slot takes whichever of the frame model (scoring windows of
``FRAME_WINDOW`` frames) and the 10-frame sequence model ranks and decides the test split better; the 20- and 40-frame
slots take their sequence models; the site's default length is the slot that does best. "Better", in order: fewer
real videos called FAKE, a higher video AUC, a larger share of videos decided, fewer wrong among those decided. The
ensembles the site can offer (the mean of calibrated probabilities, as ``ml_app.detection.ensemble``) are measured
beside them. This choice looks at the test split, as the issue that set it asks; the card says so, and its figures
for the chosen models are therefore not untouched.
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from ml_app.detection.calibration import Thresholds
from ml_app.detection.decision import person_verdict
from ml_app.detection.ensemble import mean_thresholds

from .default_recipe import CHOICE_MARGIN
from .evaluate import decision_figures

FRAME_SLOT = 10


def _frames(run: dict[str, Any]) -> str:
    return "frame" if run["candidate"]["length"] == 1 else str(run["candidate"]["length"])


def figures(test: dict[str, Any]) -> dict[str, Any]:
    """What the choice and the card compare of one test report (or an ensemble's)."""
    outcomes = test["outcomes"]
    auc = test["overall"]["video"].get("auc") if "overall" in test else test.get("auc")
    return {"auc": auc, "outcomes": outcomes, **decision_figures(outcomes)}


def _finite(value: Any) -> float | None:
    """A figure as a float, None when it is missing or not a number (an AUC of one class)."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def rank(test: dict[str, Any]) -> tuple[float, ...]:
    """The sort key of "better" (larger is better)."""
    found = figures(test)

    def finite(value: Any, default: float) -> float:
        number = _finite(value)
        return default if number is None else number

    return (
        -found["outcomes"]["REAL"].get("FAKE", 0),
        finite(found["auc"], 0.0),
        finite(found["decided_share"], 0.0),
        -finite(found["wrong_among_decided"], 1.0),
    )


def wrong_verdicts(test: dict[str, Any]) -> int:
    """Real videos called FAKE plus fake videos called REAL."""
    outcomes = test["outcomes"]
    return int(outcomes["REAL"].get("FAKE", 0) + outcomes["FAKE"].get("REAL", 0))


def replaces(new: dict[str, Any], present: dict[str, Any]) -> tuple[bool, str]:
    """Whether a rebuilt model may replace the file already shipped for its slot, both measured on the same test
    split: only if it ranks the videos better (video AUC higher by more than ``CHOICE_MARGIN``, the noise between
    runs) and makes no more wrong verdicts; and why, in words."""
    new_auc, old_auc = _finite(figures(new)["auc"]), _finite(figures(present)["auc"])
    new_wrong, old_wrong = wrong_verdicts(new), wrong_verdicts(present)
    ranks_better = new_auc is not None and (old_auc is None or new_auc > old_auc + CHOICE_MARGIN)

    def shown(auc: float | None) -> str:
        return "n/a" if auc is None else f"{auc:.3f}"

    why = (
        f"test video AUC {shown(new_auc)} against the present file's {shown(old_auc)}, "
        f"{new_wrong} wrong verdicts against {old_wrong}"
    )
    return ranks_better and new_wrong <= old_wrong, why


def ensemble_scores(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The app's ensemble (``ensemble.combine``) applied to the members' test reports: per video, the mean of their
    calibrated probabilities, called with their averaged thresholds and the disagreement rule; its AUC and calls."""
    from sklearn.metrics import roc_auc_score

    members = [{row["video_id"]: row for row in run["test"]["videos"]} for run in runs]
    thresholds = mean_thresholds(
        [Thresholds(r["test"]["thresholds"]["fake"], r["test"]["thresholds"]["real"]) for r in runs]
    )
    shared = sorted(set.intersection(*(set(member) for member in members)))
    labels, means = [], []
    outcomes: dict[str, dict[str, int]] = {
        truth: {"FAKE": 0, "INCONCLUSIVE": 0, "REAL": 0} for truth in ("REAL", "FAKE")
    }
    for video in shared:
        probabilities = [float(member[video]["fake_probability"]) for member in members]
        truth = members[0][video]["label"]
        labels.append(int(truth == "FAKE"))
        means.append(fmean(probabilities))
        outcomes[truth][person_verdict(probabilities, thresholds)[0]] += 1
    auc = roc_auc_score(labels, means) if 0 < sum(labels) < len(labels) else float("nan")
    return {
        "videos": len(shared),
        "auc": float(auc),
        "outcomes": outcomes,
        "thresholds": thresholds.to_dict(),
        "fake_probabilities": dict(zip(shared, means, strict=True)),
    }


def _shippable(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The runs that may fill a slot: the final frame model and the sequence models, by key."""
    return {
        key: run
        for key, run in report["candidates"].items()
        if key.endswith("_final") or run["candidate"]["length"] > 1
    }


def ensembles(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The frame model with the 10-frame model, every sequence model, and all of them, on the test split."""
    runs = _shippable(report)
    frame = [run for run in runs.values() if run["candidate"]["length"] == 1]
    sequences = [run for run in runs.values() if run["candidate"]["length"] > 1]
    ten = [run for run in sequences if run["candidate"]["length"] == FRAME_SLOT]
    combos = {
        "frame + 10": frame + ten,
        " + ".join(_frames(run) for run in sequences): sequences,
        "frame + " + " + ".join(_frames(run) for run in sequences): frame + sequences,
    }
    return {name: ensemble_scores(members) for name, members in combos.items() if len(members) >= 2}


def choose_default(report: dict[str, Any]) -> dict[str, Any]:
    """The model of each shipped slot and the site's default length, with the figures that chose them."""
    runs = _shippable(report)
    by_length = {run["candidate"]["length"]: key for key, run in runs.items()}
    slots: dict[str, str] = {str(length): key for length, key in by_length.items() if length > 1}
    frame = by_length.get(1)
    contest = [key for key in (frame, slots.get(str(FRAME_SLOT))) if key]
    if contest:
        slots[str(FRAME_SLOT)] = max(contest, key=lambda key: rank(runs[key]["test"]))
    if not slots:
        return {"slots": {}, "default_length": None, "why": "no model to ship"}
    default = max(slots, key=lambda length: rank(runs[slots[length]]["test"]))
    measured = {key: figures(runs[key]["test"]) for key in {*slots.values(), *contest}}
    return {
        "slots": slots,
        "default_length": int(default),
        "compared": {key: {k: v for k, v in value.items() if k != "outcomes"} for key, value in measured.items()},
        "why": (
            f"the {FRAME_SLOT}-frame slot holds {slots.get(str(FRAME_SLOT))} and the default is {default} frames: "
            "fewest real test videos called FAKE, then the highest test video AUC, then the most videos decided, "
            "then the fewest wrong among them"
        ),
    }
