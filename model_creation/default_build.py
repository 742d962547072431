"""Recipe 3 of ``build_default_model``: every shared video and real face photo, candidates measured, the chosen frame
model cross-validated and calibrated out of fold, sequence models, leave-one-source-out, the default chosen, install.

Each step is one of the project's own commands (``preprocess_videos``, ``preprocess_images``, ``train_model``,
``calibrate_model``, ``evaluate_model``), run as a user would run it; a step whose outputs are already in the work
folder, made with the same settings, is reused, so an interrupted rebuild continues and a rebuild of the card's
tables costs nothing. What is chosen and why is :mod:`model_creation.training.default_recipe`'s and
:mod:`model_creation.training.default_choice`'s; the data and splits are :mod:`model_creation.training.default_data`'s
and :mod:`model_creation.training.default_photos`'.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from model_creation.build_commands import BuildCommand
from model_creation.default_steps import RecipeSteps
from model_creation.training.config import TrainError, check_frames_per_clip
from model_creation.training.default_card import card_tables
from model_creation.training.default_choice import choose_default, ensembles
from model_creation.training.default_data import dataset_rows, write_dataset_csv
from model_creation.training.default_photos import photo_counts, photo_rows
from model_creation.training.default_recipe import (
    BACKBONE_CANDIDATES,
    CHOICE_MARGIN,
    FIXED,
    RECIPE,
    Candidate,
    choose,
    experiments,
    final_frame_candidate,
    screen_seeds,
    seed_spread,
    sequence_candidates,
)
from model_creation.training.manifest import load_manifest


class RecipeThree(RecipeSteps):
    """One rebuild: ``run()`` preprocesses, trains and tests every candidate and experiment, installs the chosen."""

    def __init__(self, command: BuildCommand, options: dict[str, Any]) -> None:
        super().__init__(command, options)

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        photos = self.options.get("photos")
        if photos is not None and photos < 0:
            raise CommandError(f"--photos must be 0 (none) or a number of photos, not {photos}.")
        try:
            seeds = screen_seeds(self.options["seed"], self.options["screen_seeds"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        backbones = self._backbones()
        if self.options.get("pack"):
            manifests, photo_sources = self.unpack_crops(Path(self.options["pack"]))
            backbones = [c for c in backbones if c.image_size in manifests]
            if not backbones:
                raise CommandError(
                    f"The pack holds {sorted(manifests)} px crops; none of the candidates asked for is that size."
                )
        else:
            manifests, photo_sources = self._preprocess(backbones, photos)
        report: dict[str, Any] = {
            "recipe": RECIPE,
            "data": str(self.data),
            "photos": {"asked": photos, "sources": photo_sources, **self.photo_status()},
            "candidates": {},
            "loso": {},
        }
        held_out, seconds = self._screen(backbones, seeds, manifests, report)
        chosen = next(c for c in backbones if c.key == choose(held_out, seconds, runs_each=len(seeds)))
        report["chosen_backbone"] = chosen.to_dict()
        self.say(
            f"Chosen by held-out video AUC, a costlier candidate only by more than {CHOICE_MARGIN} and within the "
            f"training budget: {chosen.backbone} at {chosen.image_size} px."
        )
        self._final_frame_model(chosen, manifests, report)
        for experiment in experiments()[1:] if not self.options["no_loso"] else []:
            report["loso"][experiment] = self.train_and_test(chosen, experiment, manifests)
        report["loso_candidate"] = chosen.key
        sequences = sequence_candidates(chosen, self._lengths(manifests[chosen.image_size]))
        for candidate in sequences:
            report["candidates"][candidate.key] = self.train_and_test(candidate, FIXED, manifests)
        report["ensembles"] = ensembles(report)
        report["default"] = choose_default(report)
        if not self.options["no_install"]:
            report["installed"] = self.install_all(report)
        report["this_run_seconds"] = time.perf_counter() - started
        (self.work / "build.json").write_text(json.dumps(report, indent=2, default=str))
        tables = card_tables(report)
        (self.work / "card_table.md").write_text(tables + "\n")
        self.say(tables)
        self.say(f"Report: {self.work / 'build.json'}; this run took {report['this_run_seconds'] / 60:.1f} min.")
        return report

    def _backbones(self) -> list[Candidate]:
        """The table's backbone candidates that ``--backbones`` asks for, with ``--frames-per-clip`` if given."""
        wanted = self.options["backbones"]
        backbones = [c for c in BACKBONE_CANDIDATES if not wanted or c.key in wanted]
        if not backbones:
            raise CommandError(f"--backbones names none of {', '.join(c.key for c in BACKBONE_CANDIDATES)}.")
        frames = self.options.get("frames_per_clip")
        if frames is None:
            return backbones
        try:
            check_frames_per_clip(frames)
        except TrainError as exc:
            raise CommandError(str(exc)) from exc
        return [replace(c, frames_per_clip=frames) for c in backbones]

    def _screen(
        self, backbones: list[Candidate], seeds: list[int], manifests: dict[int, Path], report: dict[str, Any]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Each candidate screened once per seed (``--screen-seeds``); the first seed's run stands for it in the
        tables, the spread over seeds in ``report["screen_seeds"]``. The mean held-out AUC and the mean train seconds
        of a run, by candidate, for the choice."""
        report["screen_seeds"] = {}
        for candidate in backbones:
            runs = [self.train_and_test(candidate, FIXED, manifests, seed=seed) for seed in seeds]
            report["candidates"][candidate.key] = runs[0]
            report["screen_seeds"][candidate.key] = seed_spread(runs)
        spreads = report["screen_seeds"]
        held_out = {key: spread["held_out_auc"]["mean"] for key, spread in spreads.items()}
        seconds = {key: sum(spread["train_seconds"]) / len(seeds) for key, spread in spreads.items()}
        if len(seeds) > 1:
            self.say(
                "Screening over seeds "
                + ", ".join(map(str, seeds))
                + ": mean held-out video AUC "
                + ", ".join(f"{key} {value:.3f}" for key, value in held_out.items())
            )
        return held_out, seconds

    def _lengths(self, manifest: Path) -> list[int]:
        """The sequence lengths asked for that the clips are long enough for (a pack keeps fewer frames)."""
        frames = load_manifest(manifest).sequence_length
        lengths = sorted(set(self.options["lengths"]))
        if any(length > frames for length in lengths):
            self.say(f"The clips hold {frames} frames: no sequence model of more frames is trained.")
        return [length for length in lengths if length <= frames]

    def _preprocess(self, backbones: list[Candidate], photos: int | None) -> tuple[dict[int, Path], dict[str, Any]]:
        """Every video (and photo, unless ``photos`` is 0) of the shared data cropped at each candidate's size;
        the video manifests by size, and the photos' counts by source."""
        try:
            rows = dataset_rows(self.data)
            chosen_photos = photo_rows(self.data, photos) if photos != 0 else []
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        dataset_csv = write_dataset_csv(rows, self.work / "dataset.csv")
        photo_csv = write_dataset_csv(chosen_photos, self.work / "photos.csv") if chosen_photos else None
        # the fixed test split on its own, for evaluating any checkpoint on it with its own settings
        write_dataset_csv([row for row in rows if row.split == "test"], self.work / "test_videos.csv")
        sizes = sorted({c.image_size for c in backbones})
        manifests = {size: self.preprocess_videos(dataset_csv, size) for size in sizes}
        self.photos = {size: self.preprocess_photos(photo_csv, size) for size in sizes} if photo_csv else {}
        return manifests, photo_counts(chosen_photos)

    def _final_frame_model(self, chosen: Candidate, manifests: dict[int, Path], report: dict[str, Any]) -> None:
        """The chosen frame model at the final budget: cross-validated (its out-of-fold scores calibrate it), then
        trained on every non-test video, calibrated, tested, and checked on the held-out real photo faces."""
        final = final_frame_candidate(chosen)
        report["cross_validation"] = self.cross_validate(final, manifests)
        run = self.train_and_test(final, FIXED, manifests, calibrate_from=Path(report["cross_validation"]["run_dir"]))
        run["photo_check"] = self.photo_check(Path(run["run_dir"]), final, report["cross_validation"])
        report["candidates"][final.key] = run
        self.frame_model = Path(run["run_dir"]) / "best.pt"
