"""The calibration and thresholds an analysis decides with: the checkpoint's own, unless settings (``FAKE_THRESHOLD``,
``REAL_THRESHOLD``) or a command-line flag replace them. The worker and ``analyze_video`` both ask here."""

from __future__ import annotations

from django.conf import settings

from ml_app.detection.calibration import ScoreRule, Thresholds, score_rule
from ml_app.detection.checkpoints import CheckpointFile
from ml_app.detection.errors import ConfigurationError


def rule_for(checkpoint: CheckpointFile, fake: float | None = None, real: float | None = None) -> ScoreRule:
    """Flags first, then settings, then the checkpoint; a mix that puts REAL above FAKE is a ConfigurationError."""
    given = fake is not None or real is not None
    fake = settings.FAKE_THRESHOLD if fake is None else fake
    real = settings.REAL_THRESHOLD if real is None else real
    try:
        return score_rule(checkpoint.calibration, fake, real, "option" if given else "settings")
    except ValueError as exc:
        raise ConfigurationError(
            f"The verdict thresholds do not fit checkpoint '{checkpoint.name}': {exc}. Set both the FAKE and the "
            "REAL threshold (FAKE_THRESHOLD and REAL_THRESHOLD, or --fake-threshold and --real-threshold)."
        ) from exc


def ensemble_thresholds(fake: float | None = None, real: float | None = None) -> Thresholds | None:
    """The thresholds an ensemble decides with when flags or settings give both; None: the mean of its members'."""
    fake = settings.FAKE_THRESHOLD if fake is None else fake
    real = settings.REAL_THRESHOLD if real is None else real
    if fake is None or real is None:
        return None
    try:
        return Thresholds(fake, real, "settings")
    except ValueError as exc:
        raise ConfigurationError(f"The verdict thresholds are not usable: {exc}.") from exc
