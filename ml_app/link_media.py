"""A pasted link turned into a video or photo file on disk, with where it came from: what the worker's "Fetching the
video" stage and ``manage.py analyze_video URL`` / ``analyze_image URL`` both do.

A link that serves a video or a photo is downloaded as it is; a web page is handed to yt-dlp (ml_app.page_video),
and the file it finds is downloaded. Every request goes through the guarded fetcher (ml_app.fetching) under one
deadline. What the file is comes from its first bytes (the server's Content-Type and the URL's name only when the
bytes say nothing), so that the checks of an upload (extension allow-list, probe, limits) apply to it unchanged.
Django-free: the caller passes the limits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from ml_app.detection.errors import FetchError, NotMedia
from ml_app.fetching import FetchedFile, fetch
from ml_app.page_video import Guard, resolve_page

Progress = Callable[[int, int | None], None]

_BY_TYPE = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/x-msvideo": "avi",
    "video/mpeg": "mpg",
    "video/x-flv": "flv",
    "video/x-ms-wmv": "wmv",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
}
_PAGE_TYPES = ("text/html", "application/xhtml+xml")
_PHOTO_EXTENSIONS = ("jpg", "png", "webp")


@dataclass(frozen=True)
class LinkLimits:
    """The limits of one link's fetch (from settings on the site: MAX_UPLOAD_MB, URL_FETCH_TIMEOUT, ...)."""

    max_bytes: int
    timeout: float
    allow_private: bool = False
    max_seconds: float | None = None
    min_rate: float = 1024.0
    rate_window: float = 30.0
    extractors: tuple[str, ...] = ("default",)
    """yt-dlp's extractors for pages (URL_PAGE_EXTRACTORS): all it knows by default, or ("generic", "html5")."""


@dataclass(frozen=True)
class FetchedMedia:
    """A downloaded video or photo the caller now owns, and its provenance."""

    path: Path
    source_url: str
    final_url: str
    title: str
    fetched_at: datetime
    content_type: str
    size: int
    extension: str
    page_url: str = ""
    """The page the video was found on ("" for a direct link)."""

    @property
    def kind(self) -> str:
        return "image" if self.extension in _PHOTO_EXTENSIONS else "video"

    @property
    def name(self) -> str:
        """A file name to show and to check like an upload's: the link's last path part, with the true extension."""
        stem = Path(urlsplit(self.final_url).path).stem or urlsplit(self.final_url).hostname or "video"
        stem = re.sub(r"[^\w\-]+", "_", self.title or stem).strip("_")[:80] or "video"
        return f"{stem}.{self.extension}" if self.extension else stem


def sniff(head: bytes) -> str:
    """The file type its first bytes say ("" when they do not say): an extension, or "html" for a web page."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF":
        return {b"WEBP": "webp", b"AVI ": "avi"}.get(head[8:12], "")
    if head[4:8] == b"ftyp":
        return "mov" if head[8:10] == b"qt" else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head.startswith(b"FLV"):
        return "flv"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "html"
    return ""


def file_type(fetched: FetchedFile) -> str:
    """What a fetched file is: its bytes first, then its Content-Type, then its name's extension."""
    with open(fetched.path, "rb") as handle:
        kind = sniff(handle.read(64))
    if kind:
        return kind
    if fetched.content_type in _PAGE_TYPES:
        return "html"
    if fetched.content_type in _BY_TYPE:
        return _BY_TYPE[fetched.content_type]
    if fetched.content_type.startswith(("video/", "image/")):
        return Path(fetched.filename).suffix.lower().lstrip(".")
    return ""


def fetch_media(
    url: str, dest_dir: str | os.PathLike, limits: LinkLimits, progress: Progress | None = None
) -> FetchedMedia:
    """Download the video or photo ``url`` leads to into ``dest_dir``; raises a FetchError that says why not."""
    guard = Guard(limits.timeout, limits.max_bytes, limits.allow_private, limits.min_rate, limits.rate_window)
    first = _fetch(url, dest_dir, limits, guard, progress)
    kind = file_type(first)
    if kind != "html":
        if not kind:
            first.path.unlink(missing_ok=True)
            shown = first.content_type or "a file of unknown type"
            raise NotMedia(f"The link leads to {shown}, not to a video, a photo or a web page with a video.")
        return _media(first, url, kind)
    first.path.unlink(missing_ok=True)  # the page itself: yt-dlp reads it again, through the same guard
    video = resolve_page(first.final_url, guard, limits.max_seconds, limits.extractors)
    found = _fetch(video.url, dest_dir, limits, guard, progress, headers=video.headers)
    kind = file_type(found)
    if not kind or kind == "html":
        found.path.unlink(missing_ok=True)
        raise NotMedia("The page's video link did not lead to a video file.")
    return _media(found, url, kind, title=video.title, page_url=video.page_url)


def _fetch(url, dest_dir, limits: LinkLimits, guard: Guard, progress, headers=None) -> FetchedFile:
    try:
        return fetch(
            url,
            dest_dir,
            max_bytes=limits.max_bytes,
            timeout=guard.remaining(),
            allow_private=limits.allow_private,
            progress=progress,
            headers=headers,
            min_rate=limits.min_rate,
            rate_window=limits.rate_window,
        )
    except FetchError:
        raise
    except OSError as error:  # the destination folder, not the link
        raise FetchError(f"The download could not be stored: {error.strerror or error}.") from error


def _media(fetched: FetchedFile, url: str, extension: str, title: str = "", page_url: str = "") -> FetchedMedia:
    return FetchedMedia(
        path=fetched.path,
        source_url=url,
        final_url=fetched.final_url,
        title=title,
        fetched_at=datetime.now(UTC),
        content_type=fetched.content_type,
        size=fetched.size,
        extension=extension,
        page_url=page_url,
    )
