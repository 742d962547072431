"""``manage.py preprocess_videos INPUT --layout L --output DIR``: face-crop clips and a manifest for training."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.defaults import DEFAULT_MAX_WINDOWS
from ml_app.detection.frame_folder import DEFAULT_FRAME_FPS
from model_creation.training.layouts import LAYOUTS, LayoutError, parse_shard, read_layout
from model_creation.training.options import one_line
from model_creation.training.preprocess_options import (
    add_crop_arguments,
    add_grouping_arguments,
    add_run_arguments,
    announce_and_run,
    preprocessing_from_flags,
    report_lines,
    select_entries,
)


class Command(BaseCommand):
    help = (
        "Find and follow the faces of every video of a dataset exactly as the app does at inference, and save the "
        "face-crop clips (one per person track and window) with a manifest. Resumable (finished videos are "
        "skipped), parallel (--workers) and shardable across machines (--shard K/N, then merge_manifests)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("input", help="dataset folder, or the CSV file for --layout csv")
        parser.add_argument("--layout", required=True, choices=LAYOUTS)
        parser.add_argument("--output", required=True, help="folder for clips, records and the manifest")
        parser.add_argument("--dataset", help="dataset name recorded per video (default: the layout's name)")
        sampling = parser.add_argument_group("sampling")
        sampling.add_argument("--sequence-length", type=int, default=20, help="frames per window (default 20)")
        sampling.add_argument(
            "--windows",
            type=int,
            default=DEFAULT_MAX_WINDOWS,
            help=f"windows spread over each video (default {DEFAULT_MAX_WINDOWS})",
        )
        sampling.add_argument(
            "--fps",
            type=float,
            default=DEFAULT_FRAME_FPS,
            help="frame rate of a video given as a folder of frame images (frame_0.jpg, frame_1.jpg, ...; images "
            f"carry none; default {DEFAULT_FRAME_FPS:g})",
        )
        add_crop_arguments(parser)
        labels = parser.add_argument_group("labels and groups")
        add_grouping_arguments(labels, "video")
        labels.add_argument("--videos-dir", help="csv: folder the file names are relative to (default: the CSV's)")
        labels.add_argument("--splits", help="ffpp: folder with the official train.json, val.json and test.json")
        labels.add_argument("--compression", help="ffpp: only this compression, e.g. c23")
        add_run_arguments(parser, "video")

    def handle(self, *args, **options) -> None:
        from model_creation.training.extract import ExtractSettings
        from model_creation.training.preprocess import PreprocessError

        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        try:
            prep = preprocessing_from_flags(options)
            settings = ExtractSettings(prep, options["sequence_length"], options["windows"], options["fps"])
            shard = parse_shard(options["shard"]) if options["shard"] else None
            source = Path(options["input"])
            entries = read_layout(
                options["layout"],
                source,
                dataset=options["dataset"],
                group_regex=options["group_regex"],
                one_means=options["one_means"],
                videos_dir=Path(options["videos_dir"]) if options["videos_dir"] else None,
                splits_dir=Path(options["splits"]) if options["splits"] else None,
                compression=options["compression"],
            )
        except (LayoutError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        entries, where = select_entries(entries, shard, options["limit"])
        try:
            summary = announce_and_run(
                entries, settings, options, shard, unit="video", say=self.stdout.write, where=where
            )
        except PreprocessError as exc:
            raise CommandError(one_line(exc)) from exc
        for line in report_lines(summary, "video"):
            self.stdout.write(line)
