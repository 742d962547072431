"""``manage.py analyze_video PATH``: analyse one video from the command line, as the worker would."""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection import descriptor_process
from ml_app.detection.errors import CheckpointError, ConfigurationError, DetectionError, VideoError
from ml_app.detection.gradcam import preload
from ml_app.detection.heatmaps import HEATMAP_MODES
from ml_app.detection.naming import person_number
from ml_app.detection.video import probe_video
from ml_app.management.link_option import fetched_path
from ml_app.management.report_option import add_report_argument, check_report_path, write_report_option

if TYPE_CHECKING:
    from ml_app.detection.results import AnalysisResult

EXIT_VIDEO = 3
EXIT_CHECKPOINT = 4


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def add_heatmap_argument(parser: CommandParser) -> None:
    """--heatmaps: the same for a video's and a photo's analysis."""
    parser.add_argument(
        "--heatmaps",
        choices=HEATMAP_MODES,
        help="Grad-CAM heat maps after the verdict: flagged (the windows of FAKE and INCONCLUSIVE people), all (every "
        "scored window) or off; written beside the crops by --save-crops (default: DETECTION_HEATMAPS with "
        "--save-crops, else off)",
    )


def import_early(heatmaps: str) -> None:
    """The face descriptor process started, and when maps will be drawn grad-cam's import (seconds) begun, in the
    background while the checkpoint loads and the video is analysed, not after it."""
    descriptor_process.warm()
    if heatmaps != "off":
        threading.Thread(target=preload, name="heatmaps-import", daemon=True).start()


def heatmap_mode(options: dict) -> str:
    """--heatmaps, else DETECTION_HEATMAPS when the maps are shown (--save-crops, --report), else off."""
    if options["heatmaps"]:
        return options["heatmaps"]
    return settings.DETECTION_HEATMAPS if options["save_crops"] or options.get("report") else "off"


def add_threshold_arguments(parser: CommandParser) -> None:
    """--fake-threshold and --real-threshold: the same for a video's and a photo's analysis."""
    parser.add_argument(
        "--fake-threshold",
        type=_probability,
        help="FAKE at or above this calibrated probability (default: FAKE_THRESHOLD, else the checkpoint's)",
    )
    parser.add_argument(
        "--real-threshold",
        type=_probability,
        help="REAL at or below this calibrated probability (default: REAL_THRESHOLD, else the checkpoint's)",
    )


class Command(BaseCommand):
    help = (
        "Analyse a video for deepfaked faces. Prints a summary, or the full result with --json. "
        f"Exit status: 0 analysed (REAL, FAKE or INCONCLUSIVE), 1 other failure, {EXIT_VIDEO} unusable video, "
        f"{EXIT_CHECKPOINT} checkpoint problem."
    )
    # The site's checks (URLs, admin, API schema) say nothing about analysing a file and cost a cold start a second.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", help="video file to analyse, or an http(s) link to a video or to a page that shows one"
        )
        parser.add_argument(
            "--sequence-length",
            type=int,
            help=f"frames per window; picks the checkpoint (default {settings.DEFAULT_SEQUENCE_LENGTH}, "
            "or the length of --checkpoint)",
        )
        parser.add_argument(
            "--checkpoint",
            action="append",
            help="checkpoint file to use; by default the registry's active one for the length, as on the site (without "
            "a registry: MODEL_MAPPING, then the best file in the models folder). The output says which and why. "
            "Given more than once: an ensemble of those files.",
        )
        parser.add_argument(
            "--ensemble",
            help="analyse with a named ensemble (the registry's, or one of MODEL_MAPPING's names): the mean of its "
            "members' calibrated answers",
        )
        parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
        parser.add_argument(
            "--max-windows", type=int, default=settings.DETECTION_MAX_WINDOWS, help="windows spread over the video"
        )
        parser.add_argument("--batch-size", type=int, default=settings.DETECTION_BATCH_SIZE)
        parser.add_argument("--device", default=settings.DETECTION_DEVICE, help="auto, cpu or cuda")
        parser.add_argument("--save-crops", metavar="DIR", help="write the face crops the network saw to DIR")
        add_report_argument(parser)
        add_heatmap_argument(parser)
        add_threshold_arguments(parser)

    def handle(self, *args, **options) -> None:
        with fetched_path(options, self.stderr):  # a link is fetched first, as the site's worker fetches one
            self._handle(**options)

    def _handle(self, **options) -> None:
        if options["max_windows"] < 1 or options["batch_size"] < 1:
            raise CommandError("--max-windows and --batch-size must be at least 1")
        check_report_path(options)
        try:  # a bad video is reported before the network is even imported
            started = time.perf_counter()
            info = probe_video(options["path"])
            probe_seconds = time.perf_counter() - started
        except VideoError as exc:
            raise CommandError(_one_line(exc.message), returncode=EXIT_VIDEO) from exc
        from ml_app.detection.model_loading import load_detector_model
        from ml_app.verdict_rule import analyse, with_provenance

        try:
            choices, ensemble = self._choices(options)
            loaded = [load_detector_model(choice.path, options["device"]) for choice in choices]
            wanted = options["sequence_length"]
            if wanted and ensemble is None and wanted != loaded[0].sequence_length:
                raise CommandError(
                    f"--sequence-length {wanted} does not match the checkpoint, which analyses "
                    f"{loaded[0].sequence_length}-frame windows."
                )
            heatmaps = heatmap_mode(options)
            import_early(heatmaps)
            result = analyse(
                options["path"],
                loaded,
                ensemble,
                options["fake_threshold"],
                options["real_threshold"],
                heatmaps,
                info=info,
                max_windows=options["max_windows"],
                batch_size=options["batch_size"],
                keep_crops=bool(options["save_crops"] or options["report"]) or heatmaps != "off",
            )
        except VideoError as exc:
            raise CommandError(_one_line(exc.message), returncode=EXIT_VIDEO) from exc
        except (CheckpointError, ConfigurationError) as exc:
            raise CommandError(_one_line(exc.message), returncode=EXIT_CHECKPOINT) from exc
        except DetectionError as exc:
            raise CommandError(_one_line(exc.message)) from exc
        result.timings["probe"] = probe_seconds
        result.timings["total"] += probe_seconds
        result.timings["checkpoint_load"] = sum(one.load_seconds for one in loaded)
        if options["save_crops"]:
            result.save_crops(options["save_crops"])
        chosen: dict | list = [{"path": str(c.path), "source": c.source, "reason": c.reason} for c in choices]
        if ensemble is None:
            chosen = chosen[0]
        data = with_provenance(result, options["path"])
        if options["json"]:
            self.stdout.write(json.dumps({**data, "checkpoint_choice": chosen}, indent=2))
        else:
            summary = format_summary(Path(options["path"]).name, result, options["save_crops"], chosen)
            self.stdout.write(summary + "\n" + provenance_line(data["provenance"]))
        write_report_option(self, result, data, options)

    @staticmethod
    def _choices(options) -> tuple[list, str | None]:
        """The checkpoint files to analyse with, and the ensemble's name when there are several."""
        from ml_app.checkpoint_lookup import choose_checkpoint, choose_ensemble
        from ml_app.detection.model_mapping import CheckpointChoice

        given = options["checkpoint"] or []
        if options["ensemble"] and given:
            raise CommandError("Give --ensemble or --checkpoint, not both.")
        if options["ensemble"]:
            choices = choose_ensemble(options["ensemble"])
            if not choices:
                raise CommandError(f"Ensemble '{options['ensemble']}' has no member with a file.")
            return choices, options["ensemble"]
        if given:
            choices = [CheckpointChoice(Path(path), "option", "given with --checkpoint") for path in given]
            return choices, ("given" if len(choices) > 1 else None)
        return [choose_checkpoint(options["sequence_length"] or settings.DEFAULT_SEQUENCE_LENGTH)], None


def _ensemble_lines(ensemble: dict | None) -> list[str]:
    """Each member's answer, for an ensemble's summary."""
    if not ensemble:
        return []
    lines = [
        f"  ensemble '{ensemble['name']}' ({ensemble['combine']} of {len(ensemble['members'])} checkpoints; the "
        f"windows below are {ensemble['evidence_from']}'s):"
    ]
    for member in ensemble["members"]:
        probability = member["fake_probability"]
        shown = "no window scored" if probability is None else f"fake probability {probability:.3f}"
        lines.append(f"    {member['name']} ({member['sequence_length']} frames): {member['verdict']}, {shown}")
    return lines


def format_summary(
    name: str,
    result: AnalysisResult,
    crops_dir: str | None = None,
    choice: dict[str, str] | list[dict[str, str]] | None = None,
) -> str:
    """A few readable lines: verdict first, then the evidence and where the time went."""
    lines = verdict_lines(name, result, choice)
    video = result.video
    rotation = f", rotated {video['rotation']}°" if video["rotation"] else ""
    lines.append(
        f"  video: {video['width']}x{video['height']}{rotation}, {video['fps']:.2f} fps, "
        f"{video['frame_count']} frames, {video['duration']:.1f} s"
    )
    if result.windows:
        lines.append(f"  windows of {result.sequence_length} frames:")
    for window in result.windows:
        where = f"    #{window.index:<2} {window.start_time:6.2f}-{window.end_time:6.2f} s  "
        if window.status == "scored":
            faces = ", ".join(f"person {person_number(t.person_id)}: {t.fake_probability:.3f}" for t in window.tracks)
            lines.append(where + f"fake probability {window.fake_probability:.3f}  ({faces})")
        else:
            explanation = {
                "no_face": "no face",
                "face_lost": f"{window.faces_found} face(s) seen, none in all frames",
                "video_ended": f"video ended after {window.frames} frames",
            }[window.status]
            lines.append(where + explanation)
    for person in result.people:
        windows = ", ".join(str(i) for i in person.windows)
        torn = f"; windows disagree by {person.disagreement:.2f}" if person.reason == "windows_disagree" else ""
        lines.append(
            f"  person {person_number(person.person_id)}: {person.verdict}, fake probability "
            f"{person.fake_probability:.3f} (windows {windows}{torn})"
        )
    return "\n".join([*lines, closing_lines(result, ("probe", "decode", "detect", "crop", "network"), crops_dir)])


def verdict_lines(
    name: str, result: AnalysisResult, choice: dict[str, str] | list[dict[str, str]] | None = None
) -> list[str]:
    """The verdict with its probability and thresholds, and the checkpoint that gave it (videos and photos alike)."""
    lines = []
    bounds = f"REAL at or below {result.thresholds.real:.3f}, FAKE at or above {result.thresholds.fake:.3f}"
    kind = "calibrated" if result.calibration.get("calibrated") else "raw, uncalibrated"
    if result.verdict == "INCONCLUSIVE":
        lines.append(f"{name}: INCONCLUSIVE ({result.reason['code']}): {result.reason['message']}")
        if result.fake_probability is not None:
            lines.append(f"  fake probability {result.fake_probability:.3f} ({kind}; {bounds})")
    else:
        lines.append(
            f"{name}: {result.verdict} (confidence {result.confidence:.1%}; fake probability "
            f"{result.fake_probability:.3f}, {kind}; {bounds})"
        )
    ck = result.checkpoint
    accuracy = ck["metrics"].get("accuracy")
    lines.append(
        f"  checkpoint: {ck['name']} ({ck['architecture']['backbone']}, "
        + ("frame model, " if ck["sequence_length"] == 1 else f"{ck['sequence_length']} frames, ")
        + ("untrained" if ck["untrained"] else f"reported accuracy {accuracy:.1%}" if accuracy else "no metrics")
        + f", sha256 {ck['sha256'][:12]}…)"
    )
    for one in [choice] if isinstance(choice, dict) else choice or []:
        lines.append(f"  checkpoint chosen: {one['reason']} ({one['path']})")
    lines += _ensemble_lines(result.ensemble)
    return lines


def provenance_line(provenance: dict) -> str:
    """The file's Content Credentials in one line, labelled as the file's own claim (the last line of a summary)."""
    return f"  content credentials (the file's own claim, not the network's): {provenance['summary']}"


def closing_lines(result: AnalysisResult, stages: tuple[str, ...], crops_dir: str | None) -> str:
    """Where the time went, where the crops are, and the warnings: the end of every summary."""
    timings = result.timings
    spent = ", ".join(f"{stage} {timings[stage]:.2f} s" for stage in (*stages, "heatmaps") if stage in timings)
    lines = [
        f"  time: {spent}; total {timings['total']:.2f} s (+ checkpoint load {timings.get('checkpoint_load', 0):.2f} s)"
    ]
    if crops_dir:
        lines.append(f"  face crops written to {crops_dir}")
    lines += heatmap_lines(result, crops_dir)
    for warning in result.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def heatmap_lines(result: AnalysisResult, crops_dir: str | None) -> list[str]:
    """How many heat maps were made and where they are, or why there are none."""
    info = result.heatmaps
    if not info or info["mode"] == "off":
        return []
    maps = result.heatmap_list()
    where = f"; written beside the crops ({crops_dir})" if crops_dir and maps else ""
    lines = [f"  heat maps ({info['method']}, {info['mode']}): {len(maps)} made{where}"]
    if info.get("note"):
        lines.append(f"  heat maps: {info['note']}")
    return lines
