"""What a network's score means: the calibration that turns it into a probability, and the two thresholds between
which the app says INCONCLUSIVE.

A checkpoint's calibration is fitted on its validation clips (``model_creation.training.calibrate``) and stored in the
checkpoint as plain numbers, so applying it needs only numpy: temperature scaling and Platt scaling act on the score's
log-odds, isotonic regression is a monotone step curve interpolated between its knots (what scikit-learn's
``IsotonicRegression.predict`` computes with ``out_of_bounds="clip"``). The thresholds are chosen on the validation
videos' calibrated probabilities and stored beside it. A checkpoint without calibration (the original app's, files
trained before calibration existed) scores with the raw network output and the uncalibrated thresholds, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

METHODS = ("temperature", "platt", "isotonic")
EPS = 1e-6
# Thresholds of a checkpoint without calibration: the raw score at 0.5 decides, as the network was trained to.
UNCALIBRATED_FAKE, UNCALIBRATED_REAL = 0.5, 0.5
PROBABILITY_MEANING = (
    "calibrated probability that this face sequence is fake, on data like the checkpoint's validation set"
)
INCONCLUSIVE_MEANING = (
    "INCONCLUSIVE is not a verdict either way: the evidence lies between the REAL and FAKE thresholds, the windows "
    "of one person contradict each other, or no face could be followed long enough to be analysed"
)
RAW_MEANING = "the network's raw score (this checkpoint carries no calibration): not a probability one can rely on"


def logit(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(values, dtype=np.float64)))


@dataclass(frozen=True)
class Thresholds:
    """FAKE at or above ``fake``, REAL at or below ``real``, INCONCLUSIVE in between; ``source`` says who chose them."""

    fake: float
    real: float
    source: str = "checkpoint"

    def __post_init__(self) -> None:
        if not (0.0 <= self.real <= self.fake <= 1.0):
            raise ValueError(f"thresholds must satisfy 0 <= REAL ({self.real}) <= FAKE ({self.fake}) <= 1")

    def to_dict(self) -> dict[str, Any]:
        return {"fake": self.fake, "real": self.real, "source": self.source}

    def overridden(self, fake: float | None, real: float | None, source: str) -> Thresholds:
        """These thresholds with either or both replaced (by settings or a command-line flag)."""
        if fake is None and real is None:
            return self
        return Thresholds(self.fake if fake is None else fake, self.real if real is None else real, source)


@dataclass(frozen=True)
class Calibration:
    """A fitted map from raw fake score to calibrated probability, the thresholds chosen with it, and its record."""

    method: str
    parameters: dict[str, Any]
    thresholds: Thresholds
    fitted_on: dict[str, Any] = field(default_factory=dict)  # the data: split, counts, the scores themselves
    metrics: dict[str, Any] = field(default_factory=dict)  # raw and calibrated figures on that data

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown calibration method {self.method!r} ({', '.join(METHODS)})")

    def apply(self, scores: Any) -> np.ndarray:
        """Calibrated probabilities of raw fake scores (any shape)."""
        raw = np.asarray(scores, dtype=np.float64)
        if self.method == "temperature":
            return sigmoid(logit(raw) / float(self.parameters["temperature"]))
        if self.method == "platt":
            return sigmoid(float(self.parameters["slope"]) * logit(raw) + float(self.parameters["intercept"]))
        knots_x = np.asarray(self.parameters["x"], dtype=np.float64)
        knots_y = np.asarray(self.parameters["y"], dtype=np.float64)
        return np.interp(raw, knots_x, knots_y)

    def apply_one(self, score: float) -> float:
        return float(self.apply(np.array([score]))[0])

    def fitted_on_summary(self) -> dict[str, Any]:
        """What it was fitted on, without the scores themselves (what results and listings carry)."""
        return {key: value for key, value in self.fitted_on.items() if key != "scores"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parameters": self.parameters,
            "thresholds": self.thresholds.to_dict(),
            "fitted_on": self.fitted_on,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Calibration | None:
        """The stored calibration, or None for a checkpoint without one; ValueError for a malformed record."""
        if not data:
            return None
        if not isinstance(data, dict):
            raise ValueError("calibration must be a mapping")
        method = data.get("method")
        parameters = data.get("parameters")
        thresholds = data.get("thresholds") or {}
        if not isinstance(parameters, dict):
            raise ValueError("calibration has no parameters")
        try:
            if method == "temperature" and not float(parameters["temperature"]) > 0:
                raise ValueError("calibration temperature must be positive")
            if method == "platt":
                float(parameters["slope"]), float(parameters["intercept"])
            if method == "isotonic" and (len(parameters["x"]) < 1 or len(parameters["x"]) != len(parameters["y"])):
                raise ValueError("isotonic calibration needs as many x as y knots")
            chosen = Thresholds(float(thresholds["fake"]), float(thresholds["real"]), "checkpoint")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"calibration record is incomplete ({exc})") from exc
        return cls(
            method=str(method),
            parameters=parameters,
            thresholds=chosen,
            fitted_on=dict(data.get("fitted_on") or {}),
            metrics=dict(data.get("metrics") or {}),
        )


@dataclass(frozen=True)
class ScoreRule:
    """How an analysis turns raw scores into a verdict: the calibration (or none) and the thresholds in force."""

    calibration: Calibration | None
    thresholds: Thresholds

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def probability(self, raw: float) -> float:
        return raw if self.calibration is None else self.calibration.apply_one(raw)

    def describe(self) -> dict[str, Any]:
        """What the result says about its numbers."""
        info: dict[str, Any] = {
            "calibrated": self.calibrated,
            "meaning": PROBABILITY_MEANING if self.calibrated else RAW_MEANING,
            "inconclusive_means": INCONCLUSIVE_MEANING,
        }
        if self.calibration is not None:
            info["method"] = self.calibration.method
            info["fitted_on"] = self.calibration.fitted_on_summary()
        return info


def score_rule(
    calibration: Calibration | None, fake: float | None = None, real: float | None = None, source: str = "settings"
) -> ScoreRule:
    """The rule for a checkpoint's calibration, with thresholds overridden where ``fake``/``real`` are given."""
    base = calibration.thresholds if calibration else Thresholds(UNCALIBRATED_FAKE, UNCALIBRATED_REAL, "uncalibrated")
    return ScoreRule(calibration, base.overridden(fake, real, source))
