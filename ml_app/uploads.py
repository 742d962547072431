"""The building blocks of receiving a video upload: the size limit is enforced while the bytes stream in, the file
lands under a random name in the media folder (never under static/), and it is hashed on the way. Validation then
checks name, content and duration, each failure with its own message.

ml_app.submissions puts these together; nothing else should need them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopUpload

from .detection.defaults import window_frames
from .detection.errors import ImageError, VideoError
from .detection.images import ImageInfo, inspect_image, is_image_name
from .detection.video import VideoInfo, probe_video


class UploadRejected(Exception):
    """A request the site refuses (an upload above all); ``status`` is the HTTP status to answer with and ``headers``
    the response headers that go with it (Retry-After, Connection)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        field: str | None = "video",
        headers: dict[str, str] | None = None,
        record: bool = True,
    ):
        """``field`` is the form field the refusal is about (``None``: the request as a whole); ``record`` False for
        refusals that are not kept on record (rate limits: a flood must not fill the table)."""
        super().__init__(message)
        self.code, self.message, self.status, self.field = code, message, status, field
        self.headers = dict(headers or {})
        self.record = record
        self.recorded = False  # set once it is on record, so that passing it up does not record it twice


ENVELOPE_BYTES = 64 * 1024  # room for the multipart envelope and the other fields around the video
FILE_FIELDS = ("video", "image")  # the form field of the file: "video" (the site's form) or "image", for a photo


def incoming_dir() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class HashedUpload(UploadedFile):
    """An uploaded file already on disk in the media folder, with its sha256."""

    def __init__(self, path: Path, name: str, size: int, sha256: str, content_type: str | None):
        super().__init__(open(path, "rb"), name=name, content_type=content_type, size=size)  # noqa: SIM115
        self.path = path
        self.sha256 = sha256
        self.kept = False

    def temporary_file_path(self) -> str:
        return str(self.path)

    def move_to(self, target: Path) -> None:
        """Keep the file: move it to ``target``; ``discard`` leaves it alone afterwards."""
        self.close()
        shutil.move(str(self.path), target)
        self.path, self.kept = target, True

    def discard(self) -> None:
        """Remove the file, unless it was kept (idempotent)."""
        self.close()
        if not self.kept:
            self.path.unlink(missing_ok=True)


class LimitedUploadHandler(FileUploadHandler):
    """Streams the video part to disk and stops reading as soon as it passes ``limit`` bytes.

    A request that announces a larger body is refused before any of it is read. Only the first file part named
    ``video`` or ``image`` is written; later ones are read past and counted (``video_parts``), other file parts are
    read past.
    ``discard`` removes every file it wrote that was not kept, the one being written included, whatever happened to
    the request (ml_app.middleware calls it after every request).
    """

    def __init__(self, request=None, limit: int | None = None):
        super().__init__(request)
        self.limit = limit if limit is not None else settings.MAX_UPLOAD_BYTES
        self.too_large = False
        self.video_parts = 0
        self._file = None
        self._path: Path | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self.uploads: list[HashedUpload] = []

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.limit + ENVELOPE_BYTES:
            self.too_large = True
            from django.http import QueryDict
            from django.utils.datastructures import MultiValueDict

            return QueryDict(mutable=True), MultiValueDict()
        return None

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        if field_name not in FILE_FIELDS:  # only the video or photo is stored; other parts are read past, never written
            raise SkipFile
        self.video_parts += 1
        if self.video_parts > 1:  # one video per upload: the request is refused (submissions), nothing more written
            raise SkipFile
        self._hash, self._size = hashlib.sha256(), 0
        handle, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=incoming_dir())
        self._file = os.fdopen(handle, "wb")
        self._path = Path(name)

    def receive_data_chunk(self, raw_data, start):
        self._size += len(raw_data)
        if self._size > self.limit:
            self.too_large = True
            self._abort()
            raise StopUpload(connection_reset=False)
        self._hash.update(raw_data)
        self._file.write(raw_data)

    def file_complete(self, file_size):
        self._file.close()
        upload = HashedUpload(self._path, self.file_name, self._size, self._hash.hexdigest(), self.content_type)
        self.uploads.append(upload)
        self._file, self._path = None, None
        return upload

    def upload_interrupted(self):
        self._abort()

    def discard(self) -> None:
        """Remove every file this handler wrote and nobody kept (idempotent)."""
        self._abort()
        for upload in self.uploads:
            upload.discard()

    def _abort(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        self._file, self._path = None, None


def sanitise_filename(name: str, limit: int = 120) -> str:
    """A display-safe version of the uploader's file name: no path, no control characters, bounded length."""
    name = unicodedata.normalize("NFKC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '<>:"|?*')
    name = re.sub(r"\s+", " ", name).strip(" .")
    if len(name) > limit:
        stem, dot, extension = name.rpartition(".")
        name = (stem[: limit - len(extension) - 1] + dot + extension) if dot and len(extension) <= 8 else name[:limit]
    return name or "video"


def extension_of(name: str) -> str:
    return Path(name).suffix.lower().lstrip(".")


def check_name(name: str) -> None:
    """Refuse (415) a file name whose extension is on neither allow-list, the videos' nor the photos'."""
    extension = extension_of(name)
    videos, photos = settings.ALLOWED_VIDEO_EXTENSIONS, settings.ALLOWED_IMAGE_EXTENSIONS
    if extension not in videos and extension not in photos:
        shown = f".{extension}" if extension else "no extension"
        raise UploadRejected(
            "unsupported_type",
            f"'{sanitise_filename(name)}' has {shown}; upload a video ({', '.join('.' + e for e in videos)}) or a "
            f"photo ({', '.join('.' + e for e in photos)}).",
            status=415,
        )


def is_photo(name: str) -> bool:
    """Whether an upload is a photo (by its allowed extension; its content is checked by ``validate_photo``)."""
    return is_image_name(name) and extension_of(name) in settings.ALLOWED_IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ValidatedUpload:
    """An upload that passed every check: the file, what it is (a video's probe or a photo's description) and the
    name to show."""

    upload: HashedUpload
    info: VideoInfo | ImageInfo
    original_name: str


def validate_photo(upload: HashedUpload) -> ValidatedUpload:
    """The checks of a photo's headers: not empty, an allowed format, under the pixel limit, large enough. Nothing is
    decoded in the request; pixel data that does not decode fails the analysis, with its reason, in the worker."""
    check_name(upload.name)
    try:
        info = inspect_image(upload.path, settings.MAX_IMAGE_PIXELS)
    except ImageError as exc:
        message = exc.message.replace(f"'{upload.path.name}'", f"'{sanitise_filename(upload.name)}'")
        raise UploadRejected(exc.code, message, status=413 if exc.code == "image_too_large" else 400) from exc
    return ValidatedUpload(upload=upload, info=info, original_name=sanitise_filename(upload.name))


def validate_video(upload: HashedUpload, sequence_length: int) -> ValidatedUpload:
    """The checks that need the bytes: not empty, decodes as video, not too long, long enough for the windows."""
    check_name(upload.name)
    if upload.size == 0:
        raise UploadRejected("empty_file", f"'{sanitise_filename(upload.name)}' is empty (0 bytes).")
    limit = settings.MAX_VIDEO_SECONDS
    try:  # a header without a length is measured up to the limit, never further
        info = probe_video(upload.path, max_seconds=limit)
    except VideoError as exc:
        message = exc.message.replace(f"'{upload.path.name}'", f"'{sanitise_filename(upload.name)}'")
        raise UploadRejected(exc.code, message) from exc
    if info.duration > limit:
        # Measured (not read from the header) and stopped at the limit: the duration is only known to be longer.
        lasts = f"{info.duration:.0f} s" if info.frame_count_exact else f"more than {limit} s"
        raise UploadRejected(
            "too_long",
            f"The video lasts {lasts}; the limit is {limit} s. Trim it and upload the part you want analysed.",
        )
    needed = window_frames(sequence_length)
    if info.frame_count < needed:
        raise UploadRejected(
            "too_few_frames",
            f"The video has {info.frame_count} frames; a {sequence_length}-frame analysis needs at least "
            f"{needed}. Choose fewer frames per window.",
            field="sequence_length",
        )
    return ValidatedUpload(upload=upload, info=info, original_name=sanitise_filename(upload.name))
