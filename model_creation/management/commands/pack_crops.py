"""``manage.py pack_crops``: preprocessed crops packed small enough to carry to another machine, and unpacked there.

    manage.py pack_crops --clips runs/default_model/clips_160 --photos runs/default_model/photos_160 --output pack.tar
    manage.py pack_crops --unpack pack.tar --output unpacked/     # then train_model --manifest unpacked/clips/...

See :mod:`model_creation.training.pack` (JPEG at quality 95, the middle frames of each video clip, every photo face).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from model_creation.training.options import one_line


class Command(BaseCommand):
    help = (
        "Pack preprocessing folders (video clips and photo faces) as JPEG frames in one .tar small enough to carry "
        "to another machine (a lent GPU), or unpack such a file into preprocessing folders that train_model reads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--clips", help="a preprocess_videos folder to pack")
        parser.add_argument("--photos", help="a preprocess_images folder to pack")
        parser.add_argument("--frames", type=int, default=10, help="frames kept from the middle of each clip")
        parser.add_argument("--unpack", metavar="PACK", help="unpack this file instead")
        parser.add_argument("--output", required=True, help="the .tar to write, or the folder to unpack into")

    def handle(self, *args, **options) -> None:
        from model_creation.training.manifest import ManifestError
        from model_creation.training.pack import pack, unpack

        output = Path(options["output"])
        try:
            if options["unpack"]:
                written = unpack(Path(options["unpack"]), output)
                for name, manifest in sorted(written.items()):
                    self.stdout.write(f"{name}: {manifest}")
                return
            folders = {name: Path(options[name]) for name in ("clips", "photos") if options[name]}
            if not folders:
                raise CommandError("Name --clips and/or --photos to pack (or --unpack a pack).")
            if options["frames"] < 1:
                raise CommandError("--frames must be at least 1.")
            counts = pack(folders, output, options["frames"])
        except (ManifestError, OSError, ValueError) as exc:
            raise CommandError(one_line(exc)) from exc
        packed = ", ".join(f"{count} frames of {name}" for name, count in counts.items())
        self.stdout.write(f"Packed {packed} into {output} ({output.stat().st_size / 1e6:.1f} MB).")
