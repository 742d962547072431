"""A web page that shows a video, resolved to the video's own address with yt-dlp (used as a library).

Every request yt-dlp makes (the page, a platform's API, an embedded player) goes through the guarded fetcher
(``ml_app.fetching``): yt-dlp gets one request handler, ``GuardedRH``, and no other, so the address rules, the
redirect limit and the time limit hold for it too. yt-dlp only reads: it downloads nothing, runs no post-processing
(no ffmpeg), resolves no playlist and no live stream. Of the formats it finds, the smallest that keeps at least 720
lines is chosen, else the best below; only formats served as one plain http(s) file qualify (no HLS or DASH pieces
to join). The caller downloads the chosen file with ``fetching.fetch``.
"""

from __future__ import annotations

import functools
import io
import time
from dataclasses import dataclass, field
from typing import Any

from yt_dlp import YoutubeDL
from yt_dlp.networking.common import RequestHandler, Response
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import DownloadError, UnsupportedError

from ml_app.detection.errors import (
    FetchError,
    FetchTimeout,
    LinkedVideoTooLong,
    LiveStream,
    LoginRequired,
    NotASingleVideo,
    NoVideoFound,
    TooLarge,
)
from ml_app.fetching import GuardedResponse, open_url

PREFERRED_HEIGHT = 720
_LOGIN_WORDS = ("login", "log in", "sign in", "signin", "cookies", "private video", "members-only", "age-restricted")


@dataclass
class Guard:
    """The limits of one page's resolution, shared by every request yt-dlp makes for it."""

    timeout: float
    max_bytes: int
    allow_private: bool = False
    min_rate: float = 1024.0
    rate_window: float = 30.0
    deadline: float = 0.0
    error: FetchError | None = field(default=None)
    """The guard's own error, kept: yt-dlp wraps what a handler raises in its own, less specific, messages."""

    def __post_init__(self) -> None:
        self.deadline = self.deadline or time.monotonic() + self.timeout

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.keep(FetchTimeout(f"Reading the page took longer than the limit of {self.timeout:g} seconds."))
        return left

    def keep(self, error: FetchError) -> FetchError:
        self.error = error
        return error


@dataclass(frozen=True)
class PageVideo:
    """The video a page shows: the address of its file and what the page says about it."""

    url: str
    headers: dict[str, str]
    title: str
    extension: str
    page_url: str
    duration: float | None = None
    filesize: int | None = None


class _Body(io.RawIOBase):
    """A guarded response as the file yt-dlp reads; more than ``max_bytes`` is refused."""

    def __init__(self, response: GuardedResponse, guard: Guard):
        self._response, self._guard, self._read = response, guard, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self.readall() if size is None or size < 0 else (super().read(size) or b"")

    def readinto(self, buffer) -> int:
        try:
            data = self._response.read1(len(buffer))
        except FetchError as error:
            raise self._guard.keep(error) from error
        self._read += len(data)
        if self._read > self._guard.max_bytes:
            raise self._guard.keep(TooLarge("The page is larger than the download limit."))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._response.close()
        super().close()


class GuardedRH(RequestHandler):
    """yt-dlp's only request handler here: each request through ``fetching.open_url``, under one Guard."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")
    _SUPPORTED_PROXY_SCHEMES = None  # proxies are ignored: the guard connects to the checked address itself
    _SUPPORTED_FEATURES = None

    def __init__(self, *, guard: Guard, **options):
        super().__init__(**options)
        self.guard = guard

    def _check_extensions(self, extensions):
        super()._check_extensions(extensions)
        for name in ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing"):
            extensions.pop(name, None)

    def _send(self, request):
        guard = self.guard
        data = request.data
        if data is not None and not isinstance(data, bytes):
            data = data.read() if hasattr(data, "read") else b"".join(data)
        try:
            response = open_url(
                request.url,
                timeout=guard.remaining(),
                allow_private=guard.allow_private,
                method=request.method,
                headers=dict(self._merge_headers(request.headers)),
                data=data,
                min_rate=guard.min_rate,
                rate_window=guard.rate_window,
            )
        except FetchError as error:
            raise TransportError(cause=guard.keep(error)) from error
        answer = Response(_Body(response, guard), response.url, dict(response.headers.items()), response.status)
        if not 200 <= response.status < 300:
            raise HTTPError(answer)
        return answer


class _GuardedYoutubeDL(YoutubeDL):
    """yt-dlp with GuardedRH as its one way out."""

    def __init__(self, params: dict[str, Any], guard: Guard):
        self.guard = guard
        super().__init__(params)

    def build_request_director(self, handlers, preferences=None):
        return super().build_request_director([functools.partial(GuardedRH, guard=self.guard)])


def choose_format(formats: list[dict]) -> dict | None:
    """The smallest plain-file video format with at least 720 lines, else the best one below (None: none usable)."""
    usable = [
        f
        for f in formats
        if f.get("url") and f.get("protocol", "https") in ("http", "https") and f.get("vcodec") != "none"
    ]
    tall = [f for f in usable if (f.get("height") or 0) >= PREFERRED_HEIGHT]
    if tall:
        return min(tall, key=lambda f: (f["height"], _size(f) or float("inf")))
    if usable:
        return max(usable, key=lambda f: (f.get("height") or 0, _size(f) or 0))
    return None


def _size(entry: dict) -> float | None:
    return entry.get("filesize") or entry.get("filesize_approx") or entry.get("tbr")


def _select(ctx: dict) -> list[dict]:
    chosen = choose_format(list(ctx.get("formats") or []))
    return [chosen] if chosen is not None else []


class _Quiet:
    def debug(self, message: str) -> None:
        pass

    warning = info = debug

    def error(self, message: str) -> None:
        pass


_loaded: list[bool] = []


def load_extractors() -> float:
    """Import yt-dlp's extractors (some 1,800 modules: the generic extractor asks each about a page) once per process;
    returns the seconds it took, which a busy disk makes long and which do not count against a link's time limit."""
    if _loaded:
        return 0.0
    start = time.monotonic()
    from yt_dlp.extractor import gen_extractor_classes

    for extractor in gen_extractor_classes():
        getattr(extractor, "real_class", None)
    _loaded.append(True)
    return time.monotonic() - start


def resolve_page(
    url: str, guard: Guard, max_seconds: float | None = None, extractors: tuple[str, ...] = ("default",)
) -> PageVideo:
    """The one video ``url``'s page shows; raises a FetchError that says why there is none to take.

    ``extractors`` are yt-dlp's ``allowed_extractors``: every site it knows by default, ``("generic", "html5")`` for
    the generic extractor and its ``<video>`` tags alone (Open Graph, JSON-LD and HTML5 video, without the seconds
    of loading some 1,800 site extractors)."""
    if set(extractors) & {"default", "all"}:
        guard.deadline += load_extractors()
    params = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _Quiet(),
        "noplaylist": True,
        "extract_flat": "in_playlist",
        "cachedir": False,
        "proxy": "",
        "retries": 0,
        "extractor_retries": 0,
        "format": _select,
        "postprocessors": [],
        "allowed_extractors": list(extractors),
    }
    try:
        with _GuardedYoutubeDL(params, guard) as ydl:
            info = ydl.extract_info(url, download=False)
    except DownloadError as error:
        raise _explain(error, guard) from error
    return _page_video(info, url, guard, max_seconds)


def _explain(error: DownloadError, guard: Guard) -> FetchError:
    """The specific error behind yt-dlp's: the guard's own, a login wall, or no video."""
    if guard.error is not None:
        return guard.error
    cause = error.exc_info[1] if error.exc_info else None
    text = str(error.msg or error).lower()
    if isinstance(cause, UnsupportedError):
        return NoVideoFound("No video was found on this page. Paste the link of the video itself, or of its page.")
    if any(word in text for word in _LOGIN_WORDS):
        return LoginRequired(
            "This video is behind a login (or is private or age-restricted): it cannot be fetched. Download it "
            "yourself and upload the file."
        )
    if "requested format is not available" in text or "no video formats" in text:
        return NoVideoFound(
            "The page has a video, but not as one plain file this site can download (only streamed pieces)."
        )
    detail = " ".join(str(error.msg or error).replace("ERROR:", "").split())[:200]
    return NoVideoFound(f"No video could be taken from this page ({detail}).")


def _page_video(info: dict | None, url: str, guard: Guard, max_seconds: float | None) -> PageVideo:
    if not info:
        raise NoVideoFound("No video was found on this page.")
    if info.get("_type") in ("playlist", "multi_video"):
        raise NotASingleVideo(
            "This page holds several videos (a playlist or a gallery); paste the link of the one video to analyse."
        )
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming", "post_live"):
        raise LiveStream("This is a live stream; only recorded videos can be analysed. Try again once it has ended.")
    duration = info.get("duration")
    if max_seconds is not None and duration and duration > max_seconds:
        raise LinkedVideoTooLong(
            f"The video lasts {duration:.0f} s; the limit is {max_seconds:g} s. Download it, trim it and upload "
            "the part you want analysed."
        )
    filesize = info.get("filesize") or info.get("filesize_approx")
    if filesize and filesize > guard.max_bytes:
        raise TooLarge(f"The video is larger than the limit of {guard.max_bytes / 1024 / 1024:.0f} MB.")
    if not info.get("url"):
        raise NoVideoFound("No video was found on this page.")
    return PageVideo(
        url=info["url"],
        headers={str(k): str(v) for k, v in (info.get("http_headers") or {}).items()},
        title=str(info.get("title") or "")[:300],
        extension=str(info.get("ext") or ""),
        page_url=str(info.get("webpage_url") or url),
        duration=float(duration) if duration else None,
        filesize=int(filesize) if filesize else None,
    )
