"""``manage.py merge_manifests OUTPUT INPUT...``: one manifest from shards or from several datasets."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from model_creation.training.manifest import ManifestError, merge_manifests
from model_creation.training.options import one_line


class Command(BaseCommand):
    help = (
        "Merge preprocess manifests made with the same settings (the shards of one dataset, or several datasets) "
        "into one. Clip files stay where they are; the merged manifest refers to them by relative path."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("output", help="the merged manifest file to write, e.g. data/all/manifest.json")
        parser.add_argument("inputs", nargs="+", help="manifest files, or folders holding one or more manifest*.json")

    def handle(self, *args, **options) -> None:
        paths: list[Path] = []
        for name in options["inputs"]:
            path = Path(name)
            found = sorted(path.glob("manifest*.json")) if path.is_dir() else [path]
            if not found:
                raise CommandError(f"'{path}' holds no manifest*.json.")
            paths.extend(found)
        output = Path(options["output"])
        if output.resolve() in {p.resolve() for p in paths}:
            raise CommandError(f"'{output}' is one of the inputs; write the merged manifest to a new file.")
        try:
            merged = merge_manifests(paths, output)
        except ManifestError as exc:
            raise CommandError(one_line(exc)) from exc
        self.stdout.write(
            f"Merged {len(paths)} manifest(s): {len(merged.videos)} videos, {len(merged.clips())} clips -> {output}"
        )
