"""Recipe 3 of the default model: its data (groups, fixed test split), its experiments (leave one source out), its
choice rules and card tables, and the rebuild command end to end on a small generated copy of the shared data."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command

from ml_app.detection.checkpoints import load_checkpoint
from model_creation.training.default_card import card_tables
from model_creation.training.default_choice import choose_default, ensemble_scores, ensembles, replaces
from model_creation.training.default_data import dataset_rows, evenly_spaced, source_of
from model_creation.training.default_recipe import (
    BACKBONE_CANDIDATES,
    CHOICE_MARGIN,
    FRAME_WINDOW,
    FRAMES_PER_CLIP,
    STAGES_AFTER_SCREENING,
    TRAINING_BUDGET_SECONDS,
    choose,
    experiment_manifest,
    experiment_split,
    experiments,
    final_frame_candidate,
    screen_seeds,
    seed_spread,
    sequence_candidates,
)
from model_creation.training.manifest import load_manifest

from .recipe_data import FFPP_FAKES, FFPP_ORIGINALS, shared_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return shared_tree(tmp_path_factory.mktemp("shared") / "data")


def test_groups_keep_pairs_and_their_fakes_together(tree):
    rows = {Path(row.filename).stem: row for row in dataset_rows(tree)}
    assert (
        rows["183"].group == rows["253"].group == rows["183_253"].group == rows["253_183"].group == "ffpp_c40:183_253"
    )
    assert rows["672_720"].group == rows["720_672"].group == rows["720"].group == "ffpp_c40:672_720"
    assert rows["RealTaxi"].group == rows["FakeTaxi"].group == "web_clips:Taxi"
    assert rows["FakeGuy"].group == "web_clips:Guy" and rows["01__talking"].group == "ffpp_c40:actor_01__talking"
    assert rows["720_672"].method == "ffpp-deepfakes" and rows["672_720"].method == "ffpp-face2face"
    assert rows["dfdc_abqwwspghj"].method == "dfdc" and rows["hamilton_360p"].label == "REAL"
    assert {source_of(row.group) for row in rows.values()} == {"real_clips", "samples", "ffpp_c40", "web_clips"}
    for group in {row.group for row in rows.values()}:
        assert len({row.split for row in rows.values() if row.group == group}) == 1, f"{group} straddles a split"


def test_fixed_test_split_is_by_name_and_holds_out_whole_sources_of_every_kind(tree):
    rows = {Path(row.filename).stem: row for row in dataset_rows(tree)}
    test = {name for name, row in rows.items() if row.split == "test"}
    assert {"672", "720", "672_720", "720_672"} <= test and not {"183", "253_183"} & test, "pair 672_720 is test"
    assert {"RealTaxi", "FakeTaxi", "FakeGuy"} <= test and "RealObama" not in test
    assert {"02__walking", "03__hugging"} <= test and "01__talking" not in test, "the last two actors"
    assert {"clip0", "hamilton_360p", "ffpp_df_003_000"} <= test and "clip1" not in test
    again = {Path(row.filename).stem: row.split for row in dataset_rows(tree)}
    assert again == {name: row.split for name, row in rows.items()}


def test_rows_refuse_a_folder_without_the_sources(tmp_path):
    (tmp_path / "real_clips").mkdir()
    with pytest.raises(FileNotFoundError, match="ffpp_c40"):
        dataset_rows(tmp_path)


def test_evenly_spaced_keeps_the_ends():
    assert evenly_spaced(1100, 3) == [0, 550, 1099] and evenly_spaced(2, 5) == [0, 1]


def test_a_build_asking_for_more_photos_than_there_are_or_fewer_than_none_says_so(tree, tmp_path):
    with pytest.raises(CommandError, match="hold 8 photos; the recipe takes 9"):
        _tiny_build(tree, tmp_path / "work", tmp_path / "models", "--photos", "9")
    with pytest.raises(CommandError, match="--photos must be 0"):
        _tiny_build(tree, tmp_path / "work", tmp_path / "models", "--photos", "-1")
    assert not (tmp_path / "models").exists()


def test_leave_one_source_out_tests_on_all_of_it_and_trains_on_the_rest():
    assert experiments() == ["fixed", "without_ffpp_c40", "without_web_clips", "without_samples"]
    assert experiment_split("without_ffpp_c40", "ffpp_c40:183_253", "train") == "test"
    assert experiment_split("without_ffpp_c40", "web_clips:Taxi", "test") == "train"
    assert experiment_split("fixed", "web_clips:Taxi", "test") == "test"
    assert experiment_split("fixed", "ffpp_c40:183_253", "train") == "train"


def test_choice_is_by_held_out_auc_and_a_tie_goes_to_the_cheaper_candidate():
    first, second, *_ = (candidate.key for candidate in BACKBONE_CANDIDATES)
    assert choose({first: 0.8, second: 0.9}) == second
    assert choose({first: 0.9, second: 0.9}) == first
    assert choose({first: float("nan"), second: 0.5}) == second
    assert choose({first: 0.5, second: float("nan")}) == first
    with pytest.raises(ValueError, match="No backbone"):
        choose({"not_a_candidate": 1.0})


def test_a_costlier_candidate_must_beat_every_cheaper_one_by_more_than_the_margin():
    first, second, third = (candidate.key for candidate in BACKBONE_CANDIDATES)
    just_inside = 0.70 + CHOICE_MARGIN - 0.005
    assert choose({first: 0.70, second: just_inside}) == first
    assert choose({first: 0.70, second: 0.70 + CHOICE_MARGIN + 0.005}) == second
    # the third beats the first by more than the margin but not the second: it must beat every cheaper one
    assert choose({first: 0.70, second: just_inside, third: 0.70 + 1.5 * CHOICE_MARGIN}) == first
    assert choose({first: 0.70, second: just_inside, third: just_inside + CHOICE_MARGIN + 0.005}) == third


def test_the_choice_keeps_to_the_training_budget():
    first, second, third = (candidate.key for candidate in BACKBONE_CANDIDATES)
    validated = {first: 0.60, second: 0.70, third: 0.80}
    minute = 60.0
    quick = {first: 4 * minute, second: 6 * minute, third: 7 * minute}
    assert choose(validated, quick) == third
    slow = {**quick, third: 12 * minute}  # the rest of the recipe at its pace would not fit
    assert 22 * minute + STAGES_AFTER_SCREENING * 12 * minute > TRAINING_BUDGET_SECONDS
    assert choose(validated, slow) == second
    # when nothing fits, the cheapest is trained rather than nothing
    assert choose(validated, {key: TRAINING_BUDGET_SECONDS for key in validated}) == first
    # screened with two seeds each: twice the time spent, and the rest of the costliest no longer fits
    assert 2 * sum(quick.values()) + STAGES_AFTER_SCREENING * quick[third] > TRAINING_BUDGET_SECONDS
    assert choose(validated, quick, runs_each=2) == second


def test_frame_models_see_several_frames_of_each_clip_an_epoch_and_sequence_models_runs_of_them():
    assert {candidate.frames_per_clip for candidate in BACKBONE_CANDIDATES} == {FRAMES_PER_CLIP} and FRAMES_PER_CLIP > 1
    final = final_frame_candidate(BACKBONE_CANDIDATES[0])
    assert final.frames_per_clip == FRAMES_PER_CLIP and final.to_dict()["frames_per_clip"] == FRAMES_PER_CLIP
    assert [c.frames_per_clip for c in sequence_candidates(final, [10, 20])] == [1, 1]


def test_repeated_screening_seeds_and_their_spread():
    assert screen_seeds(0, 1) == [0] and screen_seeds(5, 3) == [5, 6, 7]
    with pytest.raises(ValueError, match="at least 1"):
        screen_seeds(0, 0)

    def run(seed: int, held_out: float, test: float) -> dict:
        return {
            "seed": seed,
            "held_out": {"auc": held_out},
            "test": {"overall": {"video": {"auc": test}}},
            "train_seconds": 60.0,
        }

    spread = seed_spread([run(0, 0.6, 0.7), run(1, 0.8, float("nan")), run(2, 0.7, 0.5)])
    assert spread["seeds"] == [0, 1, 2] and spread["train_seconds"] == [60.0] * 3
    assert spread["held_out_auc"]["mean"] == pytest.approx(0.7) and spread["held_out_auc"]["sd"] == pytest.approx(0.1)
    # a run whose test split had one class has no AUC: the mean is over the others, the gap stays visible
    assert spread["test_auc"]["mean"] == pytest.approx(0.6) and math.isnan(spread["test_auc"]["each"][1])
    assert math.isnan(seed_spread([run(0, 0.6, 0.7)])["held_out_auc"]["sd"]), "one run has no spread"
    report = {
        "candidates": {"mobilenet_v2_160_frame": _run("mobilenet_v2_160_frame", 1, 0.91)},
        "chosen_backbone": {"backbone": "mobilenet_v2", "image_size": 160},
        "screen_seeds": {"mobilenet_v2_160_frame": spread},
    }
    tables = card_tables(report)
    assert "| mobilenet_v2_160_frame | 0, 1, 2 | 0.700 ± 0.100 (0.600, 0.800, 0.700) | 0.600 ± 0.141 (0.700, n/a," in (
        tables
    )
    assert "against real fakes, the mean over its screening seeds;" in tables
    report["screen_seeds"] = {"mobilenet_v2_160_frame": seed_spread([run(0, 0.6, 0.7)])}
    alone = card_tables(report)
    assert "Screening repeated" not in alone and "screening seeds" not in alone, "one seed: no table of seeds"


def _tiny_build(tree: Path, work: Path, models: Path, *extra: str) -> str:
    out = StringIO()
    call_command(
        "build_default_model",
        *("--data", str(tree), "--work", str(work), "--install-dir", str(models)),
        *("--backbones", "mobilenet_v2_112_frame", "--lengths", "10", "--epochs", "1"),
        *("--windows", "2", "--hidden-size", "8", "--workers", "0", "--folds", "2", "--screen-seeds", "1"),
        *("--frames-per-clip", "2"),
        *extra,
        stdout=out,
        stderr=StringIO(),
    )
    return out.getvalue()


@pytest.fixture(scope="module")
def first_build(tree, tmp_path_factory, django_db_blocker) -> tuple[Path, Path, str]:
    """One tiny build (work folder, models folder, what it printed), shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("build")
    with django_db_blocker.unblock():
        return folder / "work", folder / "models", _tiny_build(tree, folder / "work", folder / "models")


@pytest.mark.django_db
@pytest.mark.timeout(1500)
def test_recipe_three_end_to_end_and_reused_when_run_again(tree, tmp_path, first_build):
    work, models, output = first_build
    report = json.loads((work / "build.json").read_text())
    assert list(report["candidates"]) == [
        "mobilenet_v2_112_frame",
        "mobilenet_v2_112_frame_final",
        "mobilenet_v2_112_10",
    ]
    assert report["chosen_backbone"]["key"] == "mobilenet_v2_112_frame"
    assert sorted(report["loso"]) == ["without_ffpp_c40", "without_samples", "without_web_clips"]
    loso = report["loso"]["without_ffpp_c40"]["test"]
    ffpp_videos = len(FFPP_ORIGINALS) + 3 + sum(map(len, FFPP_FAKES.values()))
    assert loso["overall"]["video"]["n"] == ffpp_videos, "every FF++ video, and only those, is tested"
    assert {"ffpp-deepfakes", "ffpp-face2face"} <= set(loso["per_method"])
    # the final frame model: every non-test video trains it; its calibration is the cross-validation's, out of fold
    cv = report["cross_validation"]
    oof_videos = {video for fold in Path(cv["run_dir"]).glob("fold_*") for video in _validated(fold)}
    non_test = {row.filename for row in dataset_rows(tree) if row.split != "test"}
    assert len(oof_videos) == len(non_test), "every non-test video is scored out of fold, once"
    final = load_checkpoint(Path(report["candidates"]["mobilenet_v2_112_frame_final"]["run_dir"]) / "best.pt")
    assert final.training["split_source"].startswith("none") and final.training["monitor"]["metric"] == "none"
    fitted = final.calibration.fitted_on
    assert fitted["split"] == "out of fold" and fitted["prior"]["fake"] == 0.5 and len(fitted["scores"]) == 2
    assert fitted["excluded"]["self-blended videos"] > 0 and fitted["threshold_rule"]["fakes"].startswith("real")
    assert final.training["photo_draw"]["faces_seen"] >= 1 and final.training["photo_degradation"]
    fixed = report["candidates"]["mobilenet_v2_112_10"]["test"]["overall"]["video"]
    assert fixed["n"] == sum(row.split == "test" for row in dataset_rows(tree))
    test_csv = (work / "test_videos.csv").read_text().splitlines()
    assert len(test_csv) == fixed["n"] + 1 and all(",test," in line for line in test_csv[1:])
    # the installed 10-frame slot carries the recipe's settings and its test figures
    slot = report["default"]["slots"]["10"]
    checkpoint = load_checkpoint(models / "default_mobilenet_v2_10_frames.pt")
    assert checkpoint.sequence_length == 10 and checkpoint.preprocessing.image_size == 112
    assert checkpoint.architecture.is_frame_model == slot.endswith("_frame_final")
    assert checkpoint.window_length == 10 == FRAME_WINDOW
    assert checkpoint.preprocessing.detector.backend == "centerface"
    assert checkpoint.training["config"]["reencode"] is True and checkpoint.training["augment"]["codec"] > 0
    assert checkpoint.metrics["test"]["video"]["n"] == fixed["n"] and checkpoint.calibration is not None
    assert "decided_share" in checkpoint.metrics
    # every frame model of every experiment trains on the photos' faces too (found by CenterFace as the videos'),
    # and the photos are part of each step's settings; the sequence models cannot use one-frame clips
    photos = load_manifest(work / "photos_112" / "manifest.json")
    assert [video.status for video in photos.videos] == ["ok"] * 8, "CenterFace finds each photo's face"
    assert photos.preprocessing.detector.backend == "centerface" and photos.preprocessing.image_size == 112
    assert report["photos"]["with_a_face"] == 8 and "photos.csv into" in output
    runs = {key: run["run_dir"] for key, run in report["candidates"].items()}
    runs |= {key: run["run_dir"] for key, run in report["loso"].items()}
    for key, run_dir in runs.items():
        training = torch.load(Path(run_dir) / "best.pt", map_location="cpu", weights_only=True)["training"]
        used = [Path(extra["manifest"]) for extra in training["extra_train"]]
        assert used == ([] if key.endswith("_10") else [work / "photos_112" / "manifest.json"]), key
        frames = 1 if key.endswith("_10") else 2  # the tiny build's --frames-per-clip; sequence models take runs
        assert training["config"]["frames_per_clip"] == frames, f"{key}: the frames of each clip an epoch"
        settings = json.loads((Path(run_dir) / "recipe.json").read_text())
        assert ("extra_train" in settings) == (not key.endswith("_10")), key
    tables = (work / "card_table.md").read_text()
    assert tables in output and "| mobilenet_v2_112_10 | mobilenet_v2 | 112 | 10 |" in tables
    assert "| ffpp_c40 |" in tables and "Leave one source out" in tables and "| celeba | " in tables
    assert "out of fold | 50 % fake" in tables and "Does a photo look real" in tables
    # run again: every step is reused, the figures are the same
    again = _tiny_build(tree, work, models)
    assert again.count("Reusing") == 7 and "Training" not in again
    # the files installed by the first run are there now: each is measured on the test split and replaced only if
    # the rebuilt model ranks better by the margin (the installed copy is half precision, so a tiny random model's
    # near-tied scores may order differently; the decision must be the one the two measurements give)
    present = json.loads((work / "present" / "default_mobilenet_v2_10_frames" / "report.json").read_text())
    assert present["overall"]["video"]["n"] == fixed["n"], "the present file is measured on the same test split"
    better, why = replaces(report["candidates"][slot]["test"], present)
    assert f"10 frames: {'replacing' if better else 'keeping'} default_mobilenet_v2_10_frames.pt: {why}." in again
    assert json.loads((work / "build.json").read_text())["loso"] == report["loso"]
    # a second rebuild from nothing, in another folder, gives the same test figures
    other = _tiny_build(tree, tmp_path / "work2", tmp_path / "models2", "--no-loso")
    assert "Reusing" not in other
    second = json.loads((tmp_path / "work2" / "build.json").read_text())
    _assert_same_test_figures(second, report)


@pytest.mark.django_db
@pytest.mark.timeout(1500)
def test_recipe_three_from_a_pack_of_crops_as_on_a_lent_gpu(tree, tmp_path, first_build):
    """The crops packed where the data is, the recipe run from the pack alone (here with --device cpu)."""
    work, _, _ = first_build
    report = json.loads((work / "build.json").read_text())
    pack = tmp_path / "pack.tar"
    folders = ("--clips", str(work / "clips_112"), "--photos", str(work / "photos_112"))
    call_command("pack_crops", *folders, "--output", str(pack), stdout=StringIO())
    packed = _tiny_build(
        tree,
        tmp_path / "work",
        tmp_path / "models",
        "--no-loso",
        "--no-install",
        "--pack",
        str(pack),
        *("--device", "cpu", "--lengths", "10", "20"),
    )
    assert "Unpacking" in packed and "Preprocessing" not in packed
    assert "The clips hold 10 frames: no sequence model of more frames is trained." in packed
    from_pack = json.loads((tmp_path / "work" / "build.json").read_text())
    assert list(from_pack["candidates"]) == list(report["candidates"])
    assert from_pack["photos"]["sources"] == report["photos"]["sources"] and from_pack["photos"]["with_a_face"] == 8
    assert _test_figures(from_pack, ["candidates"]).keys() == _test_figures(report, ["candidates"]).keys()
    with pytest.raises(CommandError, match="No pack at"):
        _tiny_build(tree, tmp_path / "work2", tmp_path / "models2", "--pack", str(tmp_path / "missing.tar"))


def _validated(fold: Path) -> set[str]:
    rows = json.loads((fold / "validation_scores.json").read_text())["rows"]
    return {row[0] for row in rows if not row[0].endswith("#sbi")}


# what two CPU runs of one recipe may differ by in a probability (summation order, alignment): seen up to 1.3e-6
FLOAT_NOISE = 1e-5


def _assert_same_test_figures(second: dict, first: dict) -> None:
    """Two builds agree on every test figure; an AUC or an accuracy may differ only where float noise can reorder
    two videos or carry one across the 0.5 line.

    A tiny model's probabilities can tie to within float noise: a REAL/FAKE pair whose gap that noise can close may
    count for either side of the AUC, so the second build's AUC must lie in the range such pairs allow on the first
    build's probabilities.
    """
    groups = [group for group in ("candidates", "loso") if second[group]]  # a rebuild may skip the experiments
    figures, expected = _test_figures(second, groups), _test_figures(first, groups)
    ranged = {key for key in expected if key.endswith((" auc", " accuracy"))}
    assert {k: v for k, v in figures.items() if k not in ranged} == pytest.approx(
        {k: v for k, v in expected.items() if k not in ranged}, abs=FLOAT_NOISE, nan_ok=True
    )
    for group in groups:
        for key, run in first[group].items():
            # a video may change sides of the 0.5 line only if float noise can carry it across
            video = run["test"]["overall"]["video"]
            rows = run["test"]["videos"]
            near = sum(abs(row["fake_probability"] - video["threshold"]) <= 2 * FLOAT_NOISE for row in rows)
            accuracy = figures[f"{key} accuracy"]
            assert abs(accuracy - video["accuracy"]) <= near / len(rows) + 1e-9, f"{key}: accuracy {accuracy}"
            low, high = _auc_range(run["test"]["videos"], FLOAT_NOISE)
            auc = figures[f"{key} auc"]
            if math.isnan(low):  # one class only: no AUC (None in the JSON) in either build
                assert auc is None or auc == -1.0, (key, auc)
            else:
                assert low - 1e-9 <= auc <= high + 1e-9, f"{key}: AUC {auc}, float noise allows {low}-{high}"


def _auc_range(videos: list[dict], noise: float) -> tuple[float, float]:
    """The lowest and highest video AUC that probabilities each moved by at most ``noise`` can give (a pair's gap
    moves by up to twice that)."""
    fakes = [row["fake_probability"] for row in videos if row["label"] == "FAKE"]
    reals = [row["fake_probability"] for row in videos if row["label"] == "REAL"]
    if not fakes or not reals:
        return math.nan, math.nan
    gaps = [fake - real for fake in fakes for real in reals]
    low = sum(gap > 2 * noise for gap in gaps) / len(gaps)
    high = sum(gap >= -2 * noise for gap in gaps) / len(gaps)
    return low, high


def _test_figures(report: dict, groups: list[str]) -> dict[str, float]:
    """Every run's video-level test AUC and accuracy, outcome counts, and each test video's probability."""
    figures: dict[str, float] = {}
    for group in groups:
        for key, run in report[group].items():
            test = run["test"]
            video = test["overall"]["video"]
            figures |= {f"{key} auc": video.get("auc", -1.0), f"{key} accuracy": video["accuracy"]}
            for truth, calls in test.get("outcomes", {}).items():
                figures |= {f"{key} {truth} called {call}": count for call, count in calls.items()}
            figures |= {f"{key} {row['video_id']}": row["fake_probability"] for row in test["videos"]}
    return figures


def test_experiment_manifest_rewrites_splits_and_keeps_the_clips(tree, tmp_path):
    work = tmp_path / "work"
    call_command(
        "preprocess_videos",
        str(_csv(tree, tmp_path)),
        *("--layout", "csv", "--output", str(work / "clips"), "--sequence-length", "10", "--windows", "1"),
        *("--detector-backend", "centerface", "--image-size", "64", "--workers", "1", "--no-progress"),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    target = experiment_manifest(work / "clips" / "manifest.json", "without_web_clips", work / "m" / "web.json")
    manifest = load_manifest(target)
    splits = {video.group: video.split for video in manifest.videos}
    assert {split for group, split in splits.items() if source_of(group) == "web_clips"} == {"test"}
    assert {split for group, split in splits.items() if source_of(group) != "web_clips"} == {"train"}
    assert {source_of(group) for group in splits} == {"samples", "ffpp_c40", "web_clips"}
    assert all(manifest.clip_path(clip).is_file() for _, clip in manifest.clips())
    assert load_manifest(work / "clips" / "manifest.json").settings() == manifest.settings()


def _csv(tree: Path, tmp_path: Path) -> Path:
    from model_creation.training.default_data import write_dataset_csv

    rows = dataset_rows(tree)
    rows = [
        row
        for source in ("samples", "ffpp_c40", "web_clips")
        if (of := [r for r in rows if source_of(r.group) == source])
        for row in of[:2]
    ]
    return write_dataset_csv(rows, tmp_path / "rows.csv")


def _run(key: str, length: int, auc: float, real_fake: int = 1, decided: tuple[int, int] = (1, 3)) -> dict:
    """A run as build.json records it: its candidate, test report and figures."""
    video = {"auc": auc, "accuracy": 0.5, "confusion": [[3, 1], [2, 4]], "brier": 0.2, "ece": 0.1}
    test = {
        "overall": {"video": video},
        "per_method": {"ffpp-face2face": {"video": {"auc": auc - 0.1}}},
        "outcomes": {
            "REAL": {"FAKE": real_fake, "INCONCLUSIVE": 3 - real_fake, "REAL": decided[0]},
            "FAKE": {"FAKE": decided[1], "INCONCLUSIVE": 2, "REAL": 1},
        },
        "thresholds": {"real": 0.3, "fake": 0.7},
        "calibrated": True,
        "videos": [{"video_id": "r1", "label": "REAL", "fake_probability": 0.2}],
    }
    return {
        "candidate": {"backbone": "mobilenet_v2", "image_size": 160, "length": length, "key": key},
        "test": test,
        "held_out": {"auc": 0.77, "self_blended_auc": 0.9},
        "epochs_run": 3,
        "train_seconds": 120.0,
        "photo_draw": {"faces_seen": 900, "of": 1000},
        "calibration": {"fitted_on": {"split": "out of fold", "prior": {"fake": 0.5}, "videos": {"REAL": 9}}},
    }


def test_card_tables_state_every_model_and_experiment():
    report = {
        "candidates": {"mobilenet_v2_160_frame": _run("mobilenet_v2_160_frame", 1, 0.91)},
        "loso": {"without_ffpp_c40": _run("x", 1, 0.81)},
        "chosen_backbone": {"backbone": "mobilenet_v2", "image_size": 160},
        "loso_candidate": "x",
        "photos": {"sources": {"celeba": {"train": 90, "val": 10, "people": 70}}, "photos": 100, "with_a_face": 99},
    }
    tables = card_tables(report)
    assert "| mobilenet_v2_160_frame | mobilenet_v2 | 160 | frame | 3 | 900 of 1000 | 2 min | 0.770 / 0.900 |" in tables
    assert "| 0.910 | 60 % | 33 % | 1 / 2 / 1 | 3 / 2 / 1 |" in tables, "decided 6 of 10, 2 of them wrong"
    assert "| mobilenet_v2_160_frame | out of fold | 50 % fake | 9 / ? | 0.700 | 0.300 |" in tables
    assert "| ffpp_c40 | 4 / 6 | 0.810 |" in tables and "| without_ffpp_c40 | 0.710 |" in tables
    assert "| celeba | 90 / 10 | 70 |" in tables and "99 of 100 photos gave a face" in tables


def test_the_default_is_chosen_by_real_videos_called_fake_then_auc_then_decisions():
    report = {
        "candidates": {
            "m_frame": _run("m_frame", 1, 0.95, real_fake=0),  # a screening run: never shipped
            "m_frame_final": _run("m_frame_final", 1, 0.80, real_fake=0),
            "m_10": _run("m_10", 10, 0.90, real_fake=1),
            "m_20": _run("m_20", 20, 0.70, real_fake=0, decided=(2, 3)),
            "m_40": _run("m_40", 40, 0.70, real_fake=0),
        }
    }
    choice = choose_default(report)
    assert choice["slots"] == {"10": "m_frame_final", "20": "m_20", "40": "m_40"}, "no real video FAKE beats AUC"
    assert choice["default_length"] == 10
    report["candidates"]["m_frame_final"] = _run("m_frame_final", 1, 0.65, real_fake=0)
    assert choose_default(report)["default_length"] == 20, "the same AUC: the more decided wins"


def test_ensembles_combine_members_as_the_app_does():
    def member(length: int, probabilities: dict[str, float], fake: float, real: float) -> dict:
        videos = [
            {"video_id": key, "label": "FAKE" if key.startswith("f") else "REAL", "fake_probability": p}
            for key, p in probabilities.items()
        ]
        return {
            "candidate": {"backbone": "mobilenet_v2", "image_size": 160, "length": length},
            "test": {"videos": videos, "thresholds": {"fake": fake, "real": real}},
        }

    ten = member(10, {"f1": 0.9, "f2": 0.2, "r1": 0.1, "r2": 0.3, "r3": 0.95}, fake=0.8, real=0.2)
    twenty = member(20, {"f1": 0.9, "f2": 0.8, "r1": 0.1, "r2": 0.3, "r3": 0.05}, fake=0.6, real=0.4)
    combined = ensemble_scores([ten, twenty])
    assert combined["thresholds"]["fake"] == pytest.approx(0.7) and combined["thresholds"]["real"] == pytest.approx(0.3)
    # means: f1 .9 FAKE, f2 .5 INCONCLUSIVE (members .6 apart), r1 .1 REAL, r2 .3 REAL, r3 .5 INCONCLUSIVE
    assert combined["outcomes"] == {
        "FAKE": {"FAKE": 1, "INCONCLUSIVE": 1, "REAL": 0},
        "REAL": {"FAKE": 0, "INCONCLUSIVE": 1, "REAL": 2},
    }
    assert combined["auc"] == pytest.approx(5.5 / 6)  # f1 above all; f2 (.5) ties r3, above r1 and r2
    frame = member(1, {"f1": 0.7, "f2": 0.6, "r1": 0.2, "r2": 0.2, "r3": 0.2}, 0.6, 0.4)
    found = ensembles({"candidates": {"m_frame_final": frame, "m_10": ten, "m_20": twenty}})
    assert sorted(found) == ["10 + 20", "frame + 10", "frame + 10 + 20"]
    assert ensembles({"candidates": {"m_10": ten}}) == {}, "one model is no ensemble"


def test_a_rebuilt_model_replaces_a_shipped_one_only_if_it_ranks_better_and_is_wrong_no_more_often():
    def test(auc: float, real_fake: int, fake_real: int) -> dict:
        return {
            "overall": {"video": {"auc": auc}},
            "outcomes": {"REAL": {"FAKE": real_fake, "REAL": 3}, "FAKE": {"REAL": fake_real, "FAKE": 2}},
        }

    present = test(0.67, 0, 0)
    assert replaces(test(0.67 + CHOICE_MARGIN + 0.01, 0, 0), present)[0]
    assert not replaces(test(0.67 + CHOICE_MARGIN - 0.01, 0, 0), present)[0], "better by less than the noise"
    assert not replaces(test(0.80, 0, 1), present)[0], "a better rank with one more wrong verdict is refused"
    better, why = replaces(test(0.55, 2, 15), present)
    assert not better and why == "test video AUC 0.550 against the present file's 0.670, 17 wrong verdicts against 0"


@pytest.mark.django_db
@pytest.mark.timeout(900)
def test_screening_repeated_with_another_seed_trains_one_more_run_and_reuses_the_rest(tree, tmp_path, first_build):
    """Last in this module: it adds a run to the shared build's work folder (nothing installed)."""
    work, models, _ = first_build
    output = _tiny_build(tree, work, models, "--screen-seeds", "2", "--no-loso", "--no-install")
    assert output.count("Training") == 1 and "Training mobilenet_v2_112_frame__seed1" in output
    assert "Reusing" in output and "Screening over seeds 0, 1: mean held-out video AUC" in output
    report = json.loads((work / "build.json").read_text())
    spread = report["screen_seeds"]["mobilenet_v2_112_frame"]
    assert spread["seeds"] == [0, 1] and len(spread["held_out_auc"]["each"]) == 2
    assert report["candidates"]["mobilenet_v2_112_frame"]["seed"] == 0, "the first seed's run stands in the tables"
    again = work / "runs" / "mobilenet_v2_112_frame__seed1"
    assert json.loads((again / "recipe.json").read_text())["seed"] == 1
    training = torch.load(again / "best.pt", map_location="cpu", weights_only=True)["training"]
    assert training["config"]["seed"] == 1
    assert "Screening repeated with other seeds" in (work / "card_table.md").read_text()
    with pytest.raises(CommandError, match="at least 1"):  # said before any preprocessing or training
        _tiny_build(tree, tmp_path / "work", models, "--screen-seeds", "0", "--no-loso", "--no-install")
    with pytest.raises(CommandError, match="--frames-per-clip must be at least 1, not 0"):
        _tiny_build(tree, tmp_path / "work", models, "--frames-per-clip", "0", "--no-loso", "--no-install")
    assert not (tmp_path / "work").exists()
