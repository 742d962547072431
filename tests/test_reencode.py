"""Re-encoding augmentation (model_creation/training/reencode.py): codec round trips, downscaling, how the draw fits
into ``sample_params`` without disturbing runs that do not ask for it, and ``train_model --reencode``."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from django.core.management import call_command

from ml_app.detection.checkpoints import load_checkpoint
from model_creation.training.augment import AugmentSettings, SequenceParams, apply_params, sample_params
from model_creation.training.reencode import (
    CODECS,
    QUALITY,
    Reencoding,
    apply_reencoding,
    codec_round_trip,
    downscale,
    sample_reencoding,
)

from .training_data import synthetic_manifest


def astronaut_sequence(size: int = 112, length: int = 8, height: int | None = None) -> np.ndarray:
    """``(T, H, W, 3)`` RGB crops of a real photo (the astronaut's head), drifting a pixel a frame like a video."""
    height = height or size
    head = skimage.data.astronaut()[0:260, 100:360]
    big = cv2.resize(head, (size + length, height + length), interpolation=cv2.INTER_AREA)
    return np.stack([big[t // 2 : t // 2 + height, t : t + size] for t in range(length)])


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def laplacian_variance(frames: np.ndarray) -> float:
    """Mean over frames of the Laplacian's variance on grey: high-frequency detail."""
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in frames]))


@pytest.fixture(scope="module")
def sequence() -> np.ndarray:
    return astronaut_sequence()


# --- codec round trips ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_round_trip_keeps_shape_changes_pixels_a_little_and_repeats(sequence, codec):
    low, high = QUALITY[codec]
    quality = (low + high) // 2
    out = codec_round_trip(sequence, codec, quality)
    assert out.shape == sequence.shape and out.dtype == np.uint8
    assert out.flags["C_CONTIGUOUS"]
    difference = mean_abs_diff(out, sequence)
    assert 0 < difference < 25, f"{codec} at {quality}: mean difference {difference:.2f}"
    again = codec_round_trip(sequence, codec, quality)
    if codec == "h264":  # x264 now and then (up to ~15 calls in 100 seen) differs by a fraction of a level
        assert mean_abs_diff(again, out) < 1.0 and (again != out).mean() < 0.2
    else:
        assert np.array_equal(again, out), "one thread: the same pixels every time"


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_lower_quality_loses_more_detail(sequence, codec):
    """The knob must reach the encoder: the worst end of the range is visibly worse than the best (MJPEG once
    ignored its qscale and gave the same picture at every quality)."""
    best, worst = QUALITY[codec]  # CRF / qscale: higher is worse
    good = mean_abs_diff(codec_round_trip(sequence, codec, best), sequence)
    bad = mean_abs_diff(codec_round_trip(sequence, codec, worst), sequence)
    assert bad > good * 1.5, f"{codec}: {good:.2f} at {best}, {bad:.2f} at {worst}"


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_odd_sized_crops_round_trip_with_their_shape(codec):
    odd = astronaut_sequence(size=113, height=111, length=4)
    assert odd.shape == (4, 111, 113, 3)
    out = codec_round_trip(odd, codec, QUALITY[codec][0])
    assert out.shape == odd.shape
    assert 0 < mean_abs_diff(out, odd) < 25, "decoded, cropped back to the original size, not the input returned"


# --- downscaling ----------------------------------------------------------------------------------------------------


def test_downscale_keeps_the_shape_and_removes_fine_detail(sequence):
    detail = laplacian_variance(sequence)
    half = downscale(sequence, 0.5)
    third = downscale(sequence, 0.35)
    assert half.shape == sequence.shape and half.dtype == np.uint8
    assert laplacian_variance(half) < 0.6 * detail
    assert laplacian_variance(third) < laplacian_variance(half), "a smaller source keeps less detail"
    assert mean_abs_diff(half, sequence) < 25, "blurred, not scrambled"


def test_apply_reencoding_does_nothing_when_nothing_was_drawn(sequence):
    assert np.array_equal(apply_reencoding(sequence, Reencoding(None, 0, 1.0)), sequence)
    both = apply_reencoding(sequence, Reencoding("h264", 30, 0.5))
    assert both.shape == sequence.shape
    assert laplacian_variance(both) < 0.6 * laplacian_variance(sequence)


# --- drawing --------------------------------------------------------------------------------------------------------


def old_sample_params(settings: AugmentSettings, rng: np.random.Generator) -> SequenceParams:
    """The draws ``sample_params`` made before re-encoding existed, spelled out: runs that do not ask for
    re-encoding must draw exactly these, so a seed reproduces an older run."""
    flip = bool(rng.random() < settings.flip)
    brightness, contrast, saturation = (
        float(rng.uniform(1 - a, 1 + a)) for a in (settings.brightness, settings.contrast, settings.saturation)
    )
    blur = float(rng.uniform(*settings.blur_sigma)) if rng.random() < settings.blur else None
    low, high = settings.jpeg_quality
    jpeg = int(rng.integers(low, high + 1)) if rng.random() < settings.jpeg else None
    return SequenceParams(flip, brightness, contrast, saturation, blur, jpeg)


@pytest.mark.parametrize("seed", range(8))
def test_runs_without_reencoding_draw_what_they_always_drew(seed):
    rng_new, rng_old = np.random.default_rng(seed), np.random.default_rng(seed)
    params = sample_params(AugmentSettings(), rng_new)
    assert params.reencoding is None
    assert params == old_sample_params(AugmentSettings(), rng_old)
    assert rng_new.random() == rng_old.random(), "no extra numbers drawn: the next draw is the same"


def test_asking_for_reencoding_draws_a_codec_and_quality_from_the_tables():
    seen = set()
    for seed in range(60):
        params = sample_params(AugmentSettings(codec=1.0), np.random.default_rng(seed))
        draw = params.reencoding
        assert draw is not None and draw.codec in CODECS
        low, high = QUALITY[draw.codec]
        assert low <= draw.quality <= high and draw.scale == 1.0
        seen.add(draw.codec)
    assert seen == set(CODECS), "every codec gets drawn"
    # the other choices are unchanged by asking for re-encoding: it is drawn after them
    with_codec = sample_params(AugmentSettings(codec=1.0), np.random.default_rng(3))
    without = sample_params(AugmentSettings(), np.random.default_rng(3))
    assert (with_codec.flip, with_codec.brightness, with_codec.jpeg_quality) == (
        without.flip,
        without.brightness,
        without.jpeg_quality,
    )


def test_downscale_draws_a_factor_from_its_range():
    scales = [sample_reencoding(np.random.default_rng(seed), 0.0, 1.0, (0.35, 0.8)) for seed in range(40)]
    assert all(draw.codec is None and 0.35 <= draw.scale <= 0.8 for draw in scales)
    assert len({draw.scale for draw in scales}) > 1
    never = sample_reencoding(np.random.default_rng(0), 0.0, 0.0, (0.35, 0.8))
    assert never == Reencoding(None, 0, 1.0)


def test_for_training_maps_the_flags():
    assert AugmentSettings.for_training(False, True) is None
    assert AugmentSettings.for_training(False, False) is None
    plain = AugmentSettings.for_training(True, False)
    assert plain == AugmentSettings() and plain.codec == 0 and plain.downscale == 0
    reencoding = AugmentSettings.for_training(True, True)
    assert reencoding is not None and reencoding.codec > 0 and reencoding.downscale > 0
    assert reencoding.to_dict()["codec"] == reencoding.codec


# --- applying -------------------------------------------------------------------------------------------------------


def no_change(reencoding: Reencoding) -> SequenceParams:
    """Params that change nothing but the re-encoding."""
    return SequenceParams(False, 1.0, 1.0, 1.0, None, None, reencoding)


def test_apply_params_reencodes_and_keeps_the_colour_order(sequence):
    assert np.array_equal(apply_params(sequence, no_change(None)), sequence), "nothing drawn, nothing changed"
    params = no_change(Reencoding("vp9", 45, 0.6))  # VP9: repeatable bit for bit, so the two paths can match exactly
    rgb = apply_params(sequence, params)
    assert rgb.shape == sequence.shape and rgb.dtype == np.uint8
    assert 0 < mean_abs_diff(rgb, sequence) < 25
    bgr = apply_params(np.ascontiguousarray(sequence[..., ::-1]), params, "BGR")
    assert np.array_equal(bgr[..., ::-1], rgb), "BGR crops are re-encoded as the same picture, returned as BGR"
    assert mean_abs_diff(bgr, sequence[..., ::-1]) < 25, "still BGR (a swapped order would be far off)"


def test_reencoding_adds_no_flicker_to_a_still_sequence():
    """A still sequence stays (nearly) still after the round trip: the codec adds no frame-to-frame flicker a real
    video would not have."""
    still = np.repeat(astronaut_sequence(length=1), 6, axis=0)
    out = apply_params(still, no_change(Reencoding("vp9", 40, 1.0)))
    assert out.shape == still.shape
    assert all(mean_abs_diff(out[0], frame) < 3 for frame in out[1:])


# --- train_model --reencode -----------------------------------------------------------------------------------------


def test_train_model_reencode_records_the_settings_in_the_checkpoint(tmp_path: Path):
    manifest = synthetic_manifest(tmp_path / "clips", videos_per_label=3, clips_per_video=1, length=4)
    output = tmp_path / "out"
    log = StringIO()
    call_command(
        "train_model",
        *("--manifest", str(manifest), "--output", str(output), "--epochs", "1", "--seed", "0", "--reencode"),
        *("--backbone", "mobilenet_v2", "--hidden-size", "16", "--batch-size", "4", "--workers", "0"),
        *("--pretrained", "random", "--no-progress", "--no-tensorboard"),
        stdout=log,
    )
    training = load_checkpoint(output / "last.pt").training
    assert training["config"]["reencode"] is True, log.getvalue()
    augment = training["augment"]
    assert augment == AugmentSettings.for_training(True, True).to_dict()
    assert augment["codec"] > 0 and augment["downscale"] > 0
