"""The calibration and thresholds an analysis decides with: the checkpoint's own, unless settings (``FAKE_THRESHOLD``,
``REAL_THRESHOLD``) or a command-line flag replace them; and the one call that analyses with one checkpoint or an
ensemble of several under those rules, and the result with the file's Content Credentials beside it. The worker and
``analyze_video`` both ask here."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ml_app.detection.calibration import ScoreRule, Thresholds, score_rule
from ml_app.detection.checkpoints import CheckpointFile
from ml_app.detection.errors import ConfigurationError

if TYPE_CHECKING:
    from ml_app.detection.model_loading import LoadedModel
    from ml_app.detection.results import AnalysisResult
    from ml_app.detection.stages import Progress


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
    given = fake is not None or real is not None
    fake = settings.FAKE_THRESHOLD if fake is None else fake
    real = settings.REAL_THRESHOLD if real is None else real
    if fake is None or real is None:
        return None
    try:
        return Thresholds(fake, real, "option" if given else "settings")
    except ValueError as exc:
        raise ConfigurationError(f"The verdict thresholds are not usable: {exc}.") from exc


def analyse(
    path: str | os.PathLike,
    loaded: list[LoadedModel],
    ensemble: str | None = None,
    fake: float | None = None,
    real: float | None = None,
    heatmaps: str | None = None,
    **options: Any,
) -> AnalysisResult:
    """``path`` analysed by the one checkpoint in ``loaded``, or by all of them as the ensemble named, with the
    thresholds of :func:`rule_for` (``options`` as for ``analyze_video``); a photo by its frame model. After the
    verdict, heat maps as :func:`draw_heatmaps` makes them (the worker saves the verdict first and calls that after)."""
    result = decide(path, loaded, ensemble, fake, real, **options)
    draw_heatmaps(result, loaded, heatmaps)
    return result


def draw_heatmaps(
    result: AnalysisResult, loaded: list[LoadedModel], heatmaps: str | None = None, progress: Progress | None = None
) -> None:
    """Heat maps for the windows ``heatmaps`` selects (off, flagged, all; default DETECTION_HEATMAPS), flagged people's
    DETECTION_HEATMAP_WINDOWS most suspicious windows each, on DETECTION_HEATMAP_THREADS PyTorch threads."""
    from ml_app.detection.heatmaps import add_heatmaps, parse_mode
    from ml_app.detection.threads import limited

    mode = parse_mode(heatmaps or settings.DETECTION_HEATMAPS)
    with limited(settings.DETECTION_HEATMAP_THREADS):
        add_heatmaps(result, loaded, mode, settings.DETECTION_HEATMAP_WINDOWS, progress)


def plan_heatmaps(result: AnalysisResult, loaded: list[LoadedModel], heatmaps: str | None = None) -> bool:
    """Record in ``result.heatmaps`` which maps :func:`draw_heatmaps` will draw (state ``pending``) or why none
    (``off``, ``done``); True when there are maps to draw."""
    from ml_app.detection.heatmaps import parse_mode
    from ml_app.detection.heatmaps import plan_heatmaps as plan

    if not loaded:
        return False
    mode = parse_mode(heatmaps or settings.DETECTION_HEATMAPS)
    return bool(plan(result, loaded, mode, settings.DETECTION_HEATMAP_WINDOWS))


def decide(
    path: str | os.PathLike,
    loaded: list[LoadedModel],
    ensemble: str | None = None,
    fake: float | None = None,
    real: float | None = None,
    **options: Any,
) -> AnalysisResult:
    """The verdict and its evidence, by the one checkpoint, the ensemble or the frame model (see :func:`analyse`)."""
    from ml_app.detection.ensemble import Member, analyze_with_ensemble
    from ml_app.detection.images import is_image_name
    from ml_app.detection.prediction import analyze_video

    if is_image_name(str(path)):  # a photo: the one frame model, whatever else was asked for
        from ml_app.detection.photo import analyze_image

        if ensemble is not None or len(loaded) != 1:
            raise ConfigurationError("Photos are analysed by one frame model, not by an ensemble.")
        image_options = {key: options[key] for key in ("batch_size", "keep_crops", "progress") if key in options}
        return analyze_image(
            path,
            loaded[0],
            rule=rule_for(loaded[0].checkpoint, fake, real),
            max_pixels=settings.MAX_IMAGE_PIXELS,
            **image_options,
        )
    if ensemble is None:
        return analyze_video(path, loaded[0], rule=rule_for(loaded[0].checkpoint, fake, real), **options)
    members = [Member(one, rule_for(one.checkpoint, fake, real)) for one in loaded]
    return analyze_with_ensemble(path, ensemble, members, ensemble_thresholds(fake, real), **options)


def with_provenance(result: AnalysisResult, path: str | os.PathLike) -> dict[str, Any]:
    """``result.to_dict()`` and, under "provenance", what the file's Content Credentials say about its origin: the
    file's own claim beside the network's answer, never mixed into it (read offline; trust per C2PA_TRUST_ANCHORS).
    Its read time joins the timings. The worker and both analyse commands store and print this."""
    from ml_app.detection.provenance import read_provenance

    provenance = read_provenance(path, settings.C2PA_TRUST_ANCHORS or None)
    result.timings["provenance"] = provenance.seconds
    return {**result.to_dict(), "provenance": provenance.to_dict()}
