"""``manage.py evaluate_model CHECKPOINT (--manifest M | --videos DIR --layout L) --output DIR``."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.errors import DetectionError
from model_creation.training.labels import DEFAULT_ONE_MEANS
from model_creation.training.layouts import LAYOUTS, LayoutError, read_layout
from model_creation.training.options import incompatibility, one_line
from model_creation.training.preprocess_options import ONE_MEANS_CHOICES, ONE_MEANS_HELP

SPLIT_CHOICES = ("auto", "all", "train", "val", "test", "none")


class Command(BaseCommand):
    help = (
        "Evaluate a checkpoint (.pt or exported .onnx) on a preprocess manifest, or on a folder of videos that is "
        "preprocessed on the fly with the checkpoint's own settings. Reports accuracy, precision, recall, F1, "
        "ROC-AUC, EER, log loss, Brier score and calibration error, calibrated and raw, per clip, window and video "
        "(video = the most suspicious person, a person = the mean of their windows, as the app decides), per dataset "
        "and per manipulation method, and how many videos the app calls FAKE, REAL or INCONCLUSIVE; writes "
        "report.json, scores.csv, ROC, confusion-matrix and reliability plots, and errors.html (the most confident "
        "mistakes, with the faces the network saw)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("checkpoint", help="a .pt checkpoint or an .onnx export")
        parser.add_argument("--output", required=True, help="folder for report.json, scores.csv and plots")
        source = parser.add_argument_group("what to evaluate on (one of)")
        source.add_argument("--manifest", help="a manifest made with the checkpoint's preprocessing")
        source.add_argument("--videos", help="a dataset folder (or CSV) to preprocess with the checkpoint's settings")
        parser.add_argument(
            "--split",
            choices=SPLIT_CHOICES,
            default="auto",
            help="manifest videos to use: auto = the test split if there is one, else all; none = those without",
        )
        videos = parser.add_argument_group("for --videos")
        videos.add_argument("--layout", choices=LAYOUTS, help="how --videos is organised")
        videos.add_argument("--work-dir", help="where the clips go (default OUTPUT/clips); reused when run again")
        videos.add_argument("--windows", type=int, default=settings.DETECTION_MAX_WINDOWS, help="windows per video")
        videos.add_argument("--workers", type=int, default=1, help="preprocessing processes")
        videos.add_argument("--group-regex")
        videos.add_argument("--one-means", choices=ONE_MEANS_CHOICES, default=DEFAULT_ONE_MEANS, help=ONE_MEANS_HELP)
        videos.add_argument("--splits", help="ffpp: folder of the official split files")
        videos.add_argument("--compression", help="ffpp: e.g. c23")
        parser.add_argument(
            "--threshold",
            type=float,
            default=0.5,
            help="for the two-class metrics: FAKE when the score is at least this",
        )
        parser.add_argument(
            "--fake-threshold", type=float, help="three-way outcomes: FAKE at or above (default: the checkpoint's)"
        )
        parser.add_argument(
            "--real-threshold", type=float, help="three-way outcomes: REAL at or below (default: the checkpoint's)"
        )
        parser.add_argument(
            "--synthesize-fakes",
            choices=["sbi"],
            help="sbi: also score a self-blended fake of every real clip (reported as method 'self-blended'; the "
            "same fakes on every run)",
        )
        parser.add_argument(
            "--errors-top", type=int, default=20, help="errors.html: most confident mistakes listed of each kind (20)"
        )
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        from ml_app.detection.model_loading import load_detector_model
        from model_creation.training.manifest import ManifestError, load_manifest

        if bool(options["manifest"]) == bool(options["videos"]):
            raise CommandError("Give either --manifest or --videos (with --layout).")
        if options["videos"] and not options["layout"]:
            raise CommandError("--videos needs --layout (folder, csv, ffpp, celebdf or dfdc).")
        output = Path(options["output"])
        try:
            loaded = load_detector_model(options["checkpoint"], options["device"])
        except DetectionError as exc:
            raise CommandError(one_line(exc)) from exc
        checkpoint = loaded.checkpoint
        try:
            if options["videos"]:
                manifest = self._preprocess(options, checkpoint, output)
            else:
                manifest = load_manifest(options["manifest"])
        except (ManifestError, LayoutError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        self._check_compatible(manifest, checkpoint)
        videos, split_used = self._select(manifest, options["split"] if options["manifest"] else "all")
        if split_used in ("all", "train", "val") and checkpoint.training.get("manifest_sha256") == manifest.sha256:
            self.stdout.write(
                f"Note: the checkpoint was trained on this manifest; split '{split_used}' includes clips it was "
                "trained or selected on, so these numbers are optimistic."
            )
        report = self._evaluate(loaded, manifest, videos, options)
        report.update(
            checkpoint=checkpoint.describe(),
            manifest={"path": str(manifest.path), "sha256": manifest.sha256, "split": split_used},
        )
        self._write(output, report)

    # --- steps ------------------------------------------------------------------------------------------------------

    def _preprocess(self, options: dict[str, Any], checkpoint, output: Path):
        from model_creation.training.extract import ExtractSettings
        from model_creation.training.preprocess import PreprocessError, run_preprocess

        entries = read_layout(
            options["layout"],
            Path(options["videos"]),
            group_regex=options["group_regex"],
            one_means=options["one_means"],
            splits_dir=Path(options["splits"]) if options["splits"] else None,
            compression=options["compression"],
        )
        from ml_app.detection.defaults import window_frames

        # the windows the app analyses a video with: a frame model's are several frames long, scored as their mean
        length = window_frames(checkpoint.sequence_length)
        settings_ = ExtractSettings(checkpoint.preprocessing, length, options["windows"])
        work = Path(options["work_dir"]) if options["work_dir"] else output / "clips"
        self.stdout.write(f"Preprocessing {len(entries)} video(s) with the checkpoint's settings into {work} ...")
        try:
            summary = run_preprocess(
                entries, work, settings_, workers=options["workers"], progress=not options["no_progress"]
            )
        except PreprocessError as exc:
            raise CommandError(one_line(exc)) from exc
        return summary.manifest

    @staticmethod
    def _check_compatible(manifest, checkpoint) -> None:
        problem = incompatibility(manifest, checkpoint)
        if problem:
            raise CommandError(problem)

    @staticmethod
    def _select(manifest, split: str):
        videos = manifest.videos
        if split == "auto":
            split = "test" if any(video.split == "test" for video in videos) else "all"
        if split != "all":
            wanted = "" if split == "none" else split
            videos = [video for video in videos if video.split == wanted]
        return videos, split

    def _evaluate(self, loaded, manifest, videos, options: dict[str, Any]) -> dict[str, Any]:
        from ml_app.detection.calibration import score_rule
        from model_creation.training.dataset import ClipDataset, scoring_length, with_self_blended
        from model_creation.training.evaluate import (
            calibration_report,
            evaluation_report,
            level_scores,
            score_dataset,
            usable_items,
            video_calls,
        )

        items = usable_items(videos)
        if not items:
            raise CommandError("No video of the selection has a face clip to score.")
        if options.get("synthesize_fakes") == "sbi":
            items = with_self_blended(items)
        unscored = [video for video in videos if not video.clips]
        checkpoint = loaded.checkpoint
        length = scoring_length(checkpoint.architecture.is_frame_model, checkpoint.sequence_length, manifest)
        dataset = ClipDataset(manifest, items, length, preprocessing=checkpoint.preprocessing)
        raw = score_dataset(
            loaded.model, dataset, loaded.device, options["batch_size"], progress=not options["no_progress"]
        )
        try:
            rule = score_rule(
                loaded.checkpoint.calibration, options["fake_threshold"], options["real_threshold"], "option"
            )
        except ValueError as exc:
            raise CommandError(f"--fake-threshold / --real-threshold: {exc}") from exc
        scores = rule.calibration.apply(raw) if rule.calibration else raw
        report = evaluation_report(items, scores, options["threshold"])
        report.update(calibration_report(items, raw, scores, rule))
        report["unscored_videos"] = [
            {"video": video.video, "label": video.label, "status": video.status, "reason": video.reason}
            for video in unscored
        ]
        raw_of = {key: score for key, _, score in level_scores(items, raw, "video")}
        calls = video_calls(items, scores, rule.thresholds)
        report["videos"] = [
            {
                "video_id": key,
                "label": "FAKE" if label else "REAL",
                "fake_probability": score,
                "raw_probability": raw_of[key],
                "called": calls[key],
            }
            for key, label, score in level_scores(items, scores, "video")
        ]
        # every clip's scores (one face through one window, or one photo's face), for checks beyond this report
        report["clip_scores"] = {
            "columns": ["video_id", "window", "track", "label", "raw", "calibrated"],
            "rows": [
                [item.video.video_id, item.clip.window, item.clip.track, item.video.label, float(r), float(c)]
                for item, r, c in zip(items, raw, scores, strict=True)
            ],
        }
        info = {item.video.video_id: item.video for item in items}
        for row in report["videos"]:
            video = info[row["video_id"]]
            row.update(video=video.video, dataset=video.dataset, method=video.method)
        self._items, self._scores = items, scores
        self._errors = (dataset, scores, raw, options["threshold"], rule.calibrated, options["errors_top"])
        return report

    def _write(self, output: Path, report: dict[str, Any]) -> None:
        from model_creation.training.evaluate import LEVELS, level_scores
        from model_creation.training.metrics import json_safe
        from model_creation.training.plots import plot_confusion, plot_reliability, plot_roc

        output.mkdir(parents=True, exist_ok=True)
        report["errors"] = self._write_errors(output, report)
        (output / "report.json").write_text(json.dumps(json_safe(report), indent=2))
        with open(output / "scores.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["video", "dataset", "method", "label", "fake_probability", "raw_probability", "called"])
            for row in report["videos"]:
                writer.writerow(
                    [
                        row["video"],
                        row["dataset"],
                        row["method"],
                        row["label"],
                        repr(float(row["fake_probability"])),
                        repr(float(row["raw_probability"])),
                        row["called"],
                    ]
                )
        curves = {}
        for level in LEVELS:
            rows = level_scores(self._items, self._scores, level)
            curves[level] = ([label for _, label, _ in rows], [score for _, _, score in rows])
        plot_roc(curves, output / "roc.png", "ROC per clip, window and video")
        plot_confusion(report["overall"]["video"]["confusion"], output / "confusion_video.png", "Videos")
        for level in ("clip", "video"):
            plot_reliability(
                report["reliability"][level], output / f"reliability_{level}.png", f"Reliability ({level}s)"
            )
        self.stdout.write(format_report(report))
        self.stdout.write(
            f"Report: {output / 'report.json'} (plots: roc.png, confusion_video.png, reliability_clip.png, "
            "reliability_video.png; scores.csv)"
        )
        self.stdout.write(f"Most confident mistakes: {output / report['errors']['page']}")

    def _write_errors(self, output: Path, report: dict[str, Any]) -> dict[str, Any]:
        from model_creation.training.error_report import write_error_page

        dataset, scores, raw, threshold, calibrated, top = self._errors
        title = str(report.get("checkpoint", {}).get("name") or "")
        return write_error_page(output, dataset, scores, raw, threshold, calibrated, top, title)


def _cell(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) and math.isfinite(value) else "n/a"


def format_report(report: dict[str, Any]) -> str:
    """A table: one row per (scope, level)."""
    names = ("acc", "prec", "rec", "F1", "AUC", "EER", "Brier", "ECE")
    header = f"{'scope':<28} {'level':<7} {'n':>6} " + " ".join(f"{name:>6}" for name in names) + f" {'logloss':>8}"
    lines = [header, "-" * len(header)]
    scopes = [("overall", report["overall"])]
    scopes += [(f"dataset {name}", value) for name, value in report["per_dataset"].items()]
    scopes += [(f"method {name}", value) for name, value in report["per_method"].items()]
    for scope, levels in scopes:
        for level, m in levels.items():
            lines.append(
                f"{scope[:28]:<28} {level:<7} {m['n']:>6} {_cell(m['accuracy']):>6} {_cell(m['precision']):>6} "
                f"{_cell(m['recall']):>6} {_cell(m['f1']):>6} {_cell(m['auc']):>6} {_cell(m['eer']):>6} "
                f"{_cell(m['brier']):>6} {_cell(m['ece']):>6} {_cell(m['log_loss'], 4):>8}"
            )
    thresholds = report["thresholds"]
    lines.append(
        ("Calibrated" if report["calibrated"] else "Not calibrated (raw scores)")
        + f"; video outcomes at REAL <= {thresholds['real']:.3f} / FAKE >= {thresholds['fake']:.3f}: "
        + "; ".join(
            f"{truth} videos: " + ", ".join(f"{count} {called}" for called, count in row.items())
            for truth, row in report["outcomes"].items()
        )
    )
    if report["calibrated"]:
        raw, cal = report["raw_overall"]["video"], report["overall"]["video"]
        lines.append(
            f"Raw -> calibrated (videos): Brier {_cell(raw['brier'])} -> {_cell(cal['brier'])}, ECE "
            f"{_cell(raw['ece'])} -> {_cell(cal['ece'])}, log loss {_cell(raw['log_loss'], 4)} -> "
            f"{_cell(cal['log_loss'], 4)}"
        )
    if report["unscored_videos"]:
        lines.append(f"{len(report['unscored_videos'])} video(s) had no face clip and were not scored (INCONCLUSIVE).")
    return "\n".join(lines)
