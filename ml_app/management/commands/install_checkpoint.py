"""``manage.py install_checkpoint NAME|URL|FILE [--sha256 HEX]``: a checkpoint from the catalogue (models/catalog.json),
a link (through the project's one guarded fetcher) or a local file, checked against its sha256, validated like the
admin's upload and registered. Nothing is left behind when any step refuses it."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app import catalog
from ml_app.detection.errors import DetectionError
from ml_app.models import Checkpoint
from ml_app.registry import AlreadyRegistered, register_upload, validate_new_file

CHUNK = 1 << 20


class ProgressBar:
    """``[#####     ]  52%  4.1 / 7.8 MB`` on one line of stderr, redrawn as bytes arrive."""

    def __init__(self, stream) -> None:
        self.stream, self.last = stream, -1

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            percent = min(100, done * 100 // total)
            if percent == self.last:
                return
            self.last = percent
            bar = "#" * (percent // 5)
            self.stream.write(f"\r[{bar:<20}] {percent:3d}%  {done / 1e6:.1f} / {total / 1e6:.1f} MB")
        else:
            self.stream.write(f"\r{done / 1e6:.1f} MB")
        self.stream.flush()

    def end(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Command(BaseCommand):
    help = (
        "Install a checkpoint: a catalogue NAME (models/catalog.json), an http(s) URL, or a FILE. The file's sha256 "
        "is checked (--sha256, or the catalogue's), it is validated like the admin's upload, copied into the models "
        "folder and registered."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", nargs="?", help="catalogue name, URL or file")
        parser.add_argument("--sha256", help="the file's expected sha256 (64 hex digits); a different file is refused")
        parser.add_argument("--name", help="file name in the models folder (default: the catalogue name or source's)")
        parser.add_argument("--activate", action="store_true", help="make it the active checkpoint of its length")
        parser.add_argument("--max-mb", type=int, default=2048, help="largest download accepted (default 2048)")
        parser.add_argument("--timeout", type=float, default=1800, help="seconds a download may take (default 1800)")
        parser.add_argument(
            "--allow-private", action="store_true", help="allow links to private and loopback addresses (intranet)"
        )
        parser.add_argument("--list", action="store_true", help="list the catalogue")
        parser.add_argument(
            "--write-catalog", action="store_true", help="rewrite the catalogue's shipped entries from the files"
        )

    def handle(self, *args, **options) -> None:
        project = Path(settings.BASE_DIR)
        if options["write_catalog"]:
            entries = catalog.write_catalog(project)
            self.stdout.write(f"Wrote {catalog.catalog_path(project)} ({len(entries)} entries).")
            return
        if options["list"] or not options["source"]:
            for entry in catalog.read_catalog(project):
                self.stdout.write(f"{entry['name']}: {entry['frames']} frames, {entry['backbone']}, {entry['size']} B")
            return
        source: str = options["source"]
        expected = (options["sha256"] or "").strip().lower()
        if expected and (len(expected) != 64 or any(ch not in "0123456789abcdef" for ch in expected)):
            raise CommandError("--sha256 must be 64 hexadecimal digits.")
        folder = Path(settings.MODELS_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        temporary, name, expected = self._obtain(source, expected, folder, options)
        try:
            actual = _sha256(temporary)
            if expected and actual != expected:
                raise CommandError(f"The file's sha256 is {actual}, not the expected {expected}: it was not installed.")
            try:
                validated = validate_new_file(temporary)
            except AlreadyRegistered as known:
                raise CommandError(f"{known.message} Nothing was installed.") from known
            except DetectionError as exc:
                raise CommandError(f"Not a usable checkpoint: {' '.join(exc.message.split())}") from exc
            entry = register_upload(
                validated, options["name"] or name, activate=options["activate"], notes=f"installed from {source}"
            )
        finally:
            temporary.unlink(missing_ok=True)
        self._report(entry)

    def _obtain(self, source: str, expected: str, folder: Path, options) -> tuple[Path, str, str]:
        """The bytes in a temporary file in the models folder, the name to store them under, the sha256 to expect."""
        bar = ProgressBar(sys.stderr)
        if source.startswith(("http://", "https://")):
            return self._download(source, folder, options, bar), Path(source.split("?", maxsplit=1)[0]).stem, expected
        path = Path(source).expanduser()
        url = ""
        if not path.is_file():
            entry = catalog.find(Path(settings.BASE_DIR), source)
            if entry is None:
                raise CommandError(f"'{source}' is neither a file, a URL, nor a name in the catalogue (--list).")
            if expected and expected != entry["sha256"]:
                raise CommandError(f"--sha256 differs from the catalogue's sha256 for '{source}'.")
            expected = entry["sha256"]
            path = Path(settings.BASE_DIR) / "models" / entry["file"]
            url = entry.get("url") or ""
            if not path.is_file():
                if not url:
                    raise CommandError(f"'{source}' has no file in models/ and no URL to download it from.")
                return self._download(url, folder, options, bar), entry["name"], expected
            source = entry["name"]
        handle, name = tempfile.mkstemp(prefix=".install-", suffix=".pt", dir=folder)
        temporary = Path(name)
        try:
            total, done = path.stat().st_size, 0
            with open(path, "rb") as reader, os.fdopen(handle, "wb") as writer:
                while chunk := reader.read(CHUNK):
                    writer.write(chunk)
                    done += len(chunk)
                    bar(done, total)
            bar.end()
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary, Path(source).stem, expected

    def _download(self, url: str, folder: Path, options, bar: ProgressBar) -> Path:
        from ml_app import fetching

        try:
            fetched = fetching.fetch(
                url,
                folder,
                max_bytes=options["max_mb"] * 1024 * 1024,
                timeout=options["timeout"],
                allow_private=options["allow_private"],
                progress=bar,
            )
        except fetching.FetchError as exc:
            raise CommandError(f"The download failed: {exc.message}") from exc
        finally:
            bar.end()
        return fetched.path

    def _report(self, entry: Checkpoint) -> None:
        state = "active" if entry.is_active else "registered, not active (activate it in the admin or with --activate)"
        self.stdout.write(
            f"Installed '{entry.name}' ({entry.sequence_length} frames, sha256 {entry.sha256[:12]}…) at "
            f"{entry.path}: {state}."
        )
