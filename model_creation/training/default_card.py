"""The model card's tables for recipe 3, from ``build_default_model``'s report (``build.json``).

Every figure the card quotes is printed here from the evaluation reports, so the card and the rebuild agree: the
photos used, every model on the fixed test split with the share of videos it decides and how many of those it gets
wrong, the out-of-fold calibration with its prior, the photo check, the ensembles, the default and why, and the
leave-one-source-out experiments.
"""

from __future__ import annotations

import math
from typing import Any

from .default_choice import figures
from .default_recipe import CHOICE_MARGIN

FFPP_METHODS = ("ffpp-deepfakes", "ffpp-face2face", "ffpp-faceswap", "ffpp-neuraltextures")


def fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def percent(value: Any) -> str:
    return f"{100 * value:.0f} %" if isinstance(value, int | float) and math.isfinite(value) else "n/a"


def called(row: dict[str, int]) -> str:
    return f"{row['FAKE']} / {row['INCONCLUSIVE']} / {row['REAL']}"


def _frames(candidate: dict[str, Any]) -> str:
    return "frame" if candidate["length"] == 1 else str(candidate["length"])


def photos_table(report: dict[str, Any]) -> list[str]:
    photos = report.get("photos") or {}
    sources = photos.get("sources") or {}
    if not sources:
        return ["No photos in training (--photos 0)."]
    lines = ["| source | photos (training / held out) | people |", "|---|---|---|"]
    for source, counts in sources.items():
        lines.append(f"| {source} | {counts['train']} / {counts['val']} | {counts['people']} |")
    not_used = photos.get("not_used") or {}
    lines += [
        "",
        f"{photos.get('with_a_face', 0)} of {photos.get('photos', 0)} photos gave a face ({photos.get('faces', 0)} "
        f"faces; {photos.get('found_with_a_border', 0)} only once given a black border); "
        f"{len(not_used)} not used: no face found, even with the border.",
    ]
    return lines


def models_table(report: dict[str, Any]) -> list[str]:
    """One row per trained model: what it is, its budget and cost, held-out and test figures."""
    lines = [
        "| model | backbone | crop | frames | epochs | photo faces seen | train time | held-out video AUC (real "
        "fakes / self-blended) | test video AUC | decided | wrong among decided | real: FAKE / INCONCLUSIVE / REAL "
        "| fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, run in report["candidates"].items():
        candidate, test = run["candidate"], run["test"]
        found = figures(test)
        held = run.get("held_out") or {}
        draw = run.get("photo_draw") or {}
        seen = f"{draw['faces_seen']} of {draw['of']}" if draw else "none"
        lines.append(
            f"| {key} | {candidate['backbone']} | {candidate['image_size']} | {_frames(candidate)} | "
            f"{run['epochs_run']} | {seen} | {run['train_seconds'] / 60:.0f} min | {fmt(held.get('auc'))} / "
            f"{fmt(held.get('self_blended_auc'))} | {fmt(found['auc'])} | {percent(found['decided_share'])} | "
            f"{percent(found['wrong_among_decided'])} | {called(found['outcomes']['REAL'])} | "
            f"{called(found['outcomes']['FAKE'])} |"
        )
    return lines


def seed_lines(report: dict[str, Any]) -> list[str]:
    """The screening repeated with other seeds: each seed's held-out and test AUC, mean and standard deviation."""
    spreads = {key: spread for key, spread in (report.get("screen_seeds") or {}).items() if len(spread["seeds"]) > 1}
    if not spreads:
        return []

    def cell(figures: dict[str, Any]) -> str:
        each = ", ".join(fmt(value) for value in figures["each"])
        return f"{fmt(figures['mean'])} ± {fmt(figures['sd'])} ({each})"

    lines = [
        "| candidate | seeds | held-out video AUC, mean ± sd (each seed) | test video AUC, mean ± sd (each seed) |",
        "|---|---|---|---|",
    ]
    for key, spread in spreads.items():
        seeds = ", ".join(str(seed) for seed in spread["seeds"])
        lines.append(f"| {key} | {seeds} | {cell(spread['held_out_auc'])} | {cell(spread['test_auc'])} |")
    return lines


def cross_validation_lines(report: dict[str, Any]) -> list[str]:
    cv = report.get("cross_validation")
    if not cv:
        return []
    oof = cv["out_of_fold"]
    video, blended = oof.get("video", {}), oof.get("self_blended", {})
    return [
        "| out of fold | videos | video AUC | FAKE at or above | REAL at or below | decided | wrong among decided "
        "| real: FAKE / INCONCLUSIVE / REAL | fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {cv['candidate']['key']}, {cv['folds']} folds | {oof.get('videos')} | "
        f"{fmt(video.get('calibrated', {}).get('auc'))} | {fmt(oof['thresholds']['fake'])} | "
        f"{fmt(oof['thresholds']['real'])} | {percent(oof.get('decided_share'))} | "
        f"{percent(oof.get('wrong_among_decided'))} | {called(oof['outcomes']['REAL'])} | "
        f"{called(oof['outcomes']['FAKE'])} |",
        "",
        f"Self-blended copies, kept out of the calibration and thresholds: video AUC {fmt(blended.get('auc'))} "
        f"against the real videos ({blended.get('n', 0)} videos)"
        + (f"; called {called(blended['outcomes']['FAKE'])} (FAKE / INCONCLUSIVE / REAL)." if blended else "."),
    ]


def calibration_table(report: dict[str, Any]) -> list[str]:
    lines = [
        "| model | calibrated on | prior | real / fake videos | FAKE at or above | REAL at or below | test video Brier "
        "raw -> calibrated | test real videos: median fake probability |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, run in report["candidates"].items():
        test, calibration = run["test"], run.get("calibration") or {}
        on = calibration.get("fitted_on") or {}
        if not test.get("calibrated"):
            continue
        raw = (test.get("raw_overall") or test["overall"])["video"]
        reals = [row["fake_probability"] for row in test["videos"] if row["label"] == "REAL"]
        prior = on.get("prior", {}).get("fake")
        videos = on.get("videos") or {}
        lines.append(
            f"| {key} | {on.get('split', 'n/a')} | "
            f"{percent(prior) + ' fake' if prior is not None else 'n/a'} | {videos.get('REAL', '?')} / "
            f"{videos.get('FAKE', '?')} | {fmt(test['thresholds']['fake'])} | {fmt(test['thresholds']['real'])} | "
            f"{fmt(raw.get('brier'))} -> {fmt(test['overall']['video'].get('brier'))} | "
            f"{fmt(sorted(reals)[len(reals) // 2] if reals else None)} |"
        )
    return lines


def per_method_table(runs: dict[str, dict[str, Any]], title: str) -> list[str]:
    """Video AUC of each kind of fake against the test split's real videos, per run."""
    methods = sorted({method for run in runs.values() for method in run["test"].get("per_method", {})} - {"real"})
    lines = [f"| {title} | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for key, run in runs.items():
        per_method = run["test"].get("per_method", {})
        cells = [fmt(per_method.get(method, {}).get("video", {}).get("auc")) for method in methods]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def ensemble_table(report: dict[str, Any]) -> list[str]:
    combined = report.get("ensembles") or {}
    if not combined:
        return []
    lines = [
        "| ensemble (mean of calibrated probabilities) | test videos | video AUC | decided | wrong among decided "
        "| real: FAKE / INCONCLUSIVE / REAL | fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in combined.items():
        found = figures(result)
        lines.append(
            f"| {name} | {result['videos']} | {fmt(result['auc'])} | {percent(found['decided_share'])} | "
            f"{percent(found['wrong_among_decided'])} | {called(result['outcomes']['REAL'])} | "
            f"{called(result['outcomes']['FAKE'])} |"
        )
    return lines


def photo_check_lines(report: dict[str, Any]) -> list[str]:
    final = next((run for key, run in report["candidates"].items() if key.endswith("_final")), None)
    check = (final or {}).get("photo_check") or {}
    if not check.get("photo_faces"):
        return []
    photo, video = check["photo_faces"], check.get("test_real_video_faces") or {}
    return [
        "| real faces scored by the final frame model | faces | median raw score | median calibrated |",
        "|---|---|---|---|",
        f"| held-out people's photos | {photo['clips']} | {fmt(photo['raw'])} | {fmt(photo['calibrated'])} |",
        f"| test split's real videos (one window each) | {video.get('clips', 0)} | {fmt(video.get('raw'))} | "
        f"{fmt(video.get('calibrated'))} |",
        "",
        f"Out-of-fold real video faces (the fold models): median raw score "
        f"{fmt(check.get('out_of_fold_real_video_faces_raw'))}.",
    ]


def loso_table(report: dict[str, Any]) -> list[str]:
    lines = [
        f"| held out (candidate {report.get('loso_candidate', '?')}) | test videos (real / fake) | video AUC | "
        "decided | wrong among decided | real: FAKE / INCONCLUSIVE / REAL | fake: FAKE / INCONCLUSIVE / REAL |",
        "|---|---|---|---|---|---|---|",
    ]
    for experiment, run in report["loso"].items():
        found = figures(run["test"])
        (tn, fp), (fn, tp) = run["test"]["overall"]["video"]["confusion"]
        lines.append(
            f"| {experiment.removeprefix('without_')} | {tn + fp} / {fn + tp} | {fmt(found['auc'])} | "
            f"{percent(found['decided_share'])} | {percent(found['wrong_among_decided'])} | "
            f"{called(found['outcomes']['REAL'])} | {called(found['outcomes']['FAKE'])} |"
        )
    return lines


def card_tables(report: dict[str, Any]) -> str:
    chosen = report.get("chosen_backbone", {})
    default = report.get("default") or {}
    parts = [
        "Photos (real faces, self-blended in training; held-out people only measure):",
        "",
        *photos_table(report),
        "",
        "Every model, fixed test split (video level):",
        "",
        *models_table(report),
        "",
        f"Chosen: {chosen.get('backbone')} at {chosen.get('image_size')} px (by held-out video AUC against real "
        f"fakes{', the mean over its screening seeds' if seed_lines(report) else ''}; a costlier candidate must "
        f"beat every cheaper one by more than {CHOICE_MARGIN} and fit the training budget).",
        "",
        *(
            ["Screening repeated with other seeds (the choice takes the mean held-out AUC):", "", *seeds, ""]
            if (seeds := seed_lines(report))
            else []
        ),
        "The chosen frame model at the final budget, cross-validated over every non-test video (folds by group; "
        "calibration fitted on these videos at a 50/50 prior, thresholds on real manipulations only):",
        "",
        *cross_validation_lines(report),
        "",
        "Calibration of each model:",
        "",
        *calibration_table(report),
        "",
        "Per kind of fake, fixed test split (video AUC against the test split's real videos):",
        "",
        *per_method_table(report["candidates"], "model"),
    ]
    if photo := photo_check_lines(report):
        parts += ["", "Does a photo look real because it is a photo?", "", *photo]
    if ensemble := ensemble_table(report):
        parts += ["", "Ensembles the site can offer, fixed test split:", "", *ensemble]
    if default.get("slots"):
        slots = ", ".join(f"{length} frames: {key}" for length, key in sorted(default["slots"].items()))
        parts += ["", f"Shipped: {slots}; the site's default is {default['default_length']} frames ({default['why']})."]
    if report.get("loso"):
        parts += [
            "",
            "Leave one source out (trained without the source, tested on all of its videos):",
            "",
            *loso_table(report),
            "",
            *per_method_table(report["loso"], "held out"),
        ]
    return "\n".join(parts)
