"""``manage.py preprocess_videos INPUT --layout L --output DIR``: face-crop clips and a manifest for training."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.defaults import DEFAULT_MAX_WINDOWS
from ml_app.detection.preprocessing import DETECTOR_BACKENDS, DETECTOR_MODEL_CHOICES, detector_flag_help
from model_creation.training.layouts import LAYOUTS, LayoutError, in_shard, parse_shard, read_layout
from model_creation.training.options import (
    crop_defaults,
    one_line,
    preprocessing_from_file,
    preprocessing_from_options,
)

_CROP_DEFAULTS = crop_defaults()  # the app's Preprocessing / DetectorSettings defaults
_CROP_FLAGS = tuple(_CROP_DEFAULTS)
_REPORT_LINES = 40


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
        crops = parser.add_argument_group("crops (stored in the manifest and later in the checkpoint)")
        crops.add_argument(
            "--image-size", type=int, help=f"crop size in pixels (default {_CROP_DEFAULTS['image_size']})"
        )
        crops.add_argument(
            "--margin",
            type=float,
            help=f"margin around the face, fraction of its size (default {_CROP_DEFAULTS['margin']})",
        )
        detector_help = detector_flag_help()
        crops.add_argument("--detector-backend", choices=DETECTOR_BACKENDS, help=detector_help["detector_backend"])
        crops.add_argument("--detector-model", choices=DETECTOR_MODEL_CHOICES, help=detector_help["detector_model"])
        crops.add_argument("--detector-max-side", type=int, help=detector_help["detector_max_side"])
        crops.add_argument("--full-detect-every", type=int, help=detector_help["full_detect_every"])
        crops.add_argument(
            "--preprocessing-from",
            metavar="FILE",
            help="take every crop setting from a checkpoint (.pt) or a JSON file instead of the flags above",
        )
        labels = parser.add_argument_group("labels and groups")
        labels.add_argument("--group-regex", help="folder/csv: group = first capture group of this regex on the path")
        labels.add_argument(
            "--one-means",
            choices=["REAL", "FAKE"],
            default="REAL",
            help="csv: what a numeric label 1 means (default REAL, as in the original app and Celeb-DF; 0 the other)",
        )
        labels.add_argument("--videos-dir", help="csv: folder the file names are relative to (default: the CSV's)")
        labels.add_argument("--splits", help="ffpp: folder with the official train.json, val.json and test.json")
        labels.add_argument("--compression", help="ffpp: only this compression, e.g. c23")
        run = parser.add_argument_group("running")
        run.add_argument("--workers", type=int, default=1, help="processes (default 1)")
        run.add_argument("--shard", help="K/N: this machine takes shard K of N (K from 1); merge with merge_manifests")
        run.add_argument("--retry-failed", action="store_true", help="process again videos that failed before")
        run.add_argument("--limit", type=int, help="only the first N videos (a quick trial)")
        run.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        from model_creation.training.extract import ExtractSettings
        from model_creation.training.preprocess import PreprocessError, run_preprocess

        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        try:
            settings = ExtractSettings(self._preprocessing(options), options["sequence_length"], options["windows"])
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
        total = len(entries)
        if shard:
            entries = [entry for entry in entries if in_shard(entry, *shard)]
        if options["limit"]:
            entries = entries[: options["limit"]]
        where = f" (shard {shard[0]}/{shard[1]}: {len(entries)} of {total})" if shard else ""
        self.stdout.write(f"{len(entries)} video(s) from '{source}' ({options['layout']} layout){where}.")
        labels = {label: sum(1 for e in entries if e.label == label) for label in ("REAL", "FAKE")}
        self.stdout.write(f"  REAL {labels['REAL']}, FAKE {labels['FAKE']}, groups {len({e.group for e in entries})}")
        sources = [
            {
                "input": str(source.resolve()),
                "layout": options["layout"],
                "dataset": options["dataset"] or options["layout"],
                "shard": options["shard"],
                "videos": len(entries),
            }
        ]
        try:
            summary = run_preprocess(
                entries,
                Path(options["output"]),
                settings,
                workers=options["workers"],
                shard=shard,
                retry_failed=options["retry_failed"],
                progress=not options["no_progress"],
                sources=sources,
                log=self.stdout.write,
            )
        except PreprocessError as exc:
            raise CommandError(one_line(exc)) from exc
        self._report(summary)

    def _preprocessing(self, options: dict):
        given = [name for name in _CROP_FLAGS if options[name] is not None]
        if options["preprocessing_from"]:
            if given:
                flags = ", ".join("--" + name.replace("_", "-") for name in given)
                raise ValueError(f"--preprocessing-from sets every crop setting; drop {flags}.")
            return preprocessing_from_file(Path(options["preprocessing_from"]))
        return preprocessing_from_options({name: options[name] for name in given})

    def _report(self, summary) -> None:
        counts = summary.status_counts()
        clips = len(summary.manifest.clips())
        self.stdout.write(
            f"Done: {summary.processed} processed now, {summary.done_before} done before; "
            + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
            + f"; {clips} clip(s)."
        )
        if summary.failures:
            self.stdout.write(f"Skipped or broken videos ({len(summary.failures)}), kept out of training:")
            for video in summary.failures[:_REPORT_LINES]:
                self.stdout.write(f"  {video.video}: {video.status}: {video.reason}")
            if len(summary.failures) > _REPORT_LINES:
                self.stdout.write(f"  ... and {len(summary.failures) - _REPORT_LINES} more (all in the manifest)")
        self.stdout.write(f"Manifest: {summary.manifest_path}")
