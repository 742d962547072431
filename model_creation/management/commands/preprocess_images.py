"""``manage.py preprocess_images INPUT --output DIR [--layout folder|csv|140k] [--aligned]``: face crops of photos
and a manifest for training frame models; the sibling of preprocess_videos, with its flags where they apply."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.detection.images import DEFAULT_MAX_PIXELS
from model_creation.training.layouts import IMAGE_LAYOUTS, LayoutError, parse_shard, read_image_layout
from model_creation.training.options import one_line
from model_creation.training.preprocess_options import (
    add_crop_arguments,
    add_grouping_arguments,
    add_run_arguments,
    announce_and_run,
    preprocessing_from_flags,
    report_lines,
    select_entries,
    status_table,
)


class Command(BaseCommand):
    help = (
        "Find the faces in every photo of a dataset with the detector the app uses and save each face's crop as a "
        "one-frame clip with a manifest (sequence length 1, for frame models); --aligned takes photos that are "
        "face crops already as they are. Resumable, parallel (--workers) and shardable (--shard K/N) like "
        "preprocess_videos; corrupt, renamed, oversized and faceless photos are listed with the reason."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("input", help="dataset folder, or the CSV file for --layout csv")
        parser.add_argument(
            "--layout",
            choices=IMAGE_LAYOUTS,
            default="folder",
            help="folder (real/ and fake/, optionally under train/ val/ test/; the default), csv (filename,label), "
            "or 140k (Kaggle's 140k Real and Fake Faces: its train/valid/test CSVs, or its folders)",
        )
        parser.add_argument("--output", required=True, help="folder for clips, records and the manifest")
        parser.add_argument("--dataset", help="dataset name recorded per photo (default: the layout's name)")
        photos = parser.add_argument_group("photos")
        photos.add_argument(
            "--aligned",
            action="store_true",
            help="the photos are face crops already (FFHQ, StyleGAN faces): resize each whole photo, detect nothing",
        )
        photos.add_argument(
            "--max-pixels",
            type=int,
            default=DEFAULT_MAX_PIXELS,
            help=f"larger photos are refused before decoding (default {DEFAULT_MAX_PIXELS}, as on the site)",
        )
        photos.add_argument(
            "--pad-if-no-face",
            type=float,
            default=0.0,
            metavar="SHARE",
            help="search a photo in which no face is found again with this share of its longer side added as a "
            "black border (tight face crops, such as UTKFace's); the manifest says which photos needed it",
        )
        add_crop_arguments(parser, tracking=False)
        labels = parser.add_argument_group("labels and groups")
        add_grouping_arguments(labels, "image")
        labels.add_argument("--images-dir", help="csv: folder the file names are relative to (default: the CSV's)")
        add_run_arguments(parser, "image")

    def handle(self, *args, **options) -> None:
        from model_creation.training.extract_images import ImageSettings
        from model_creation.training.preprocess import PreprocessError

        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1.")
        try:
            settings = ImageSettings(
                preprocessing_from_flags(options), options["aligned"], options["max_pixels"], options["pad_if_no_face"]
            )
            shard = parse_shard(options["shard"]) if options["shard"] else None
            source = Path(options["input"])
            entries = read_image_layout(
                options["layout"],
                source,
                dataset=options["dataset"],
                group_regex=options["group_regex"],
                one_means=options["one_means"],
                images_dir=Path(options["images_dir"]) if options["images_dir"] else None,
            )
        except (LayoutError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        entries, where = select_entries(entries, shard, options["limit"])
        mode = "aligned: whole photos" if options["aligned"] else "faces detected"
        try:
            summary = announce_and_run(
                entries,
                settings,
                options,
                shard,
                unit="image",
                say=self.stdout.write,
                where=where,
                mode=mode,
                aligned=options["aligned"],
            )
        except PreprocessError as exc:
            raise CommandError(one_line(exc)) from exc
        self.stdout.write("Images by split, class and status:")
        for line in status_table(summary.manifest.videos):
            self.stdout.write(line)
        for line in report_lines(summary, "image"):
            self.stdout.write(line)
