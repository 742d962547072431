"""``manage.py analyze_image PATH``: analyse one photo from the command line, as the worker would: every face scored
by the active frame model (sequence length 1), decided by the app's verdict rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.defaults import FRAME_MODEL_LENGTH
from ml_app.detection.errors import CheckpointError, ConfigurationError, DetectionError, ImageError
from ml_app.detection.images import inspect_image
from ml_app.management.link_option import fetched_path
from ml_app.management.report_option import add_report_argument, check_report_path, write_report_option

from .analyze_video import (
    EXIT_CHECKPOINT,
    EXIT_VIDEO,
    _one_line,
    add_heatmap_argument,
    add_threshold_arguments,
    closing_lines,
    heatmap_mode,
    provenance_line,
    verdict_lines,
)

if TYPE_CHECKING:
    from ml_app.detection.results import AnalysisResult

EXIT_IMAGE = EXIT_VIDEO  # an unusable input file, photo or video: the same exit status


class Command(BaseCommand):
    help = (
        "Analyse a photo (jpg, png, webp) for deepfaked faces with a frame model. Prints a summary, or the full "
        f"result with --json. Exit status: 0 analysed (REAL, FAKE or INCONCLUSIVE), 1 other failure, {EXIT_IMAGE} "
        f"unusable photo, {EXIT_CHECKPOINT} checkpoint problem."
    )
    # The site's checks (URLs, admin, API schema) say nothing about analysing a file and cost a cold start a second.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="photo to analyse, or an http(s) link to one")
        parser.add_argument(
            "--checkpoint",
            help="frame model file to use; by default the registry's active frame model, as on the site (without a "
            'registry: MODEL_MAPPING["1"], then the best frame model in the models folder)',
        )
        parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
        parser.add_argument("--device", default=settings.DETECTION_DEVICE, help="auto, cpu or cuda")
        parser.add_argument("--save-crops", metavar="DIR", help="write the face crops the network saw to DIR")
        add_report_argument(parser)
        add_heatmap_argument(parser)
        add_threshold_arguments(parser)

    def handle(self, *args, **options) -> None:
        with fetched_path(options, self.stderr):  # a link is fetched first, as the site's worker fetches one
            self._handle(**options)

    def _handle(self, **options) -> None:
        check_report_path(options)
        try:  # a bad photo is reported before the network is even imported (its headers: no decoding twice)
            inspect_image(options["path"], settings.MAX_IMAGE_PIXELS)
        except ImageError as exc:
            raise CommandError(_one_line(exc.message), returncode=EXIT_IMAGE) from exc
        from ml_app.checkpoint_lookup import choose_checkpoint
        from ml_app.detection.model_loading import load_detector_model
        from ml_app.detection.model_mapping import CheckpointChoice
        from ml_app.verdict_rule import analyse, with_provenance

        try:
            if options["checkpoint"]:
                choice = CheckpointChoice(Path(options["checkpoint"]), "option", "given with --checkpoint")
            else:
                choice = choose_checkpoint(FRAME_MODEL_LENGTH)
            loaded = load_detector_model(choice.path, options["device"])
            heatmaps = heatmap_mode(options)
            result = analyse(
                options["path"],
                [loaded],
                None,
                options["fake_threshold"],
                options["real_threshold"],
                heatmaps,
                keep_crops=bool(options["save_crops"] or options["report"]) or heatmaps != "off",
            )
        except ImageError as exc:
            raise CommandError(_one_line(exc.message), returncode=EXIT_IMAGE) from exc
        except (CheckpointError, ConfigurationError) as exc:
            raise CommandError(_one_line(exc.message), returncode=EXIT_CHECKPOINT) from exc
        except DetectionError as exc:
            raise CommandError(_one_line(exc.message)) from exc
        result.timings["checkpoint_load"] = loaded.load_seconds
        if options["save_crops"]:
            result.save_crops(options["save_crops"])
        chosen = {"path": str(choice.path), "source": choice.source, "reason": choice.reason}
        data = with_provenance(result, options["path"])
        if options["json"]:
            self.stdout.write(json.dumps({**data, "checkpoint_choice": chosen}, indent=2))
        else:
            summary = format_photo_summary(Path(options["path"]).name, result, options["save_crops"], chosen)
            self.stdout.write(summary + "\n" + provenance_line(data["provenance"]))
        write_report_option(self, result, data, options)


def format_photo_summary(
    name: str, result: AnalysisResult, crops_dir: str | None = None, choice: dict[str, str] | None = None
) -> str:
    """Verdict first, then the photo, each face with its box and score, and where the time went."""
    lines = verdict_lines(name, result, choice)
    photo = result.video
    turned = ", turned upright by its EXIF orientation" if photo.get("exif_rotated") else ""
    lines.append(f"  photo: {photo['width']}x{photo['height']} {photo['format']}{turned}")
    people = {person.person_id: person for person in result.people}
    for track in result.windows[0].tracks if result.windows else []:
        person = people[track.person_id]
        x0, y0, x1, y1 = track.boxes[0]
        lines.append(
            f"  face {track.track_id + 1} at ({x0}, {y0})-({x1}, {y1}): {person.verdict}, fake probability "
            f"{track.fake_probability:.3f}"
        )
    return "\n".join([*lines, closing_lines(result, ("decode", "detect", "network"), crops_dir)])
