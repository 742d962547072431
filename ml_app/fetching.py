"""The project's one guarded fetcher: every download a user asks for (a video or photo link, a checkpoint URL) goes
through here, so the rules against server-side request forgery live in one place.

* Only ``http`` and ``https``. The host is resolved once; every address it resolves to is checked, and the
  connection is made to that checked address (no second lookup an attacker could answer differently).
* Loopback, private, link-local, shared (carrier NAT), reserved, multicast and unspecified addresses are refused
  unless ``allow_private`` (tests, intranet installs); cloud-metadata addresses are refused always.
* Redirects are followed by hand, at most five, and each new location passes the same checks.
* ``max_bytes`` is enforced while streaming (a lying or missing ``Content-Length`` changes nothing), the whole
  fetch has a deadline (``timeout``) and a transfer slower than ``min_rate`` bytes a second over any
  ``rate_window`` seconds is cut.
* :func:`fetch` writes to a temporary file in ``dest_dir`` and removes it on any failure.

Django-free: the caller passes the limits from its settings.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from ml_app.detection.errors import (
    AccessDenied,
    ConnectionFailed,
    FetchError,
    FetchTimeout,
    HostNotFound,
    HTTPStatusError,
    InvalidURL,
    NotFound,
    RefusedAddress,
    SlowTransfer,
    TooLarge,
    TooManyRedirects,
)
from ml_app.fetch_addresses import refusal_reason, resolve

__all__ = [
    "AccessDenied",
    "ConnectionFailed",
    "FetchError",
    "FetchTimeout",
    "FetchedFile",
    "GuardedResponse",
    "HTTPStatusError",
    "HostNotFound",
    "InvalidURL",
    "NotFound",
    "RefusedAddress",
    "SlowTransfer",
    "TooLarge",
    "TooManyRedirects",
    "check_status",
    "check_url",
    "fetch",
    "open_url",
    "refusal_reason",
    "resolve",
]

Progress = Callable[[int, int | None], None]
"""Called with the bytes received so far and the announced total (``None`` when the server does not say)."""

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "deepfake-detection-fetcher/1 (+https://github.com/)"
CHUNK = 64 * 1024


# --- one request ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise InvalidURL("This link is not a valid web address.") from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL("Only http and https links can be fetched.")
    if not parts.hostname:
        raise InvalidURL("This link has no host name.")
    if parts.username or parts.password:
        raise InvalidURL("Links with a user name or password in them are not fetched.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(c in path for c in "\r\n "):
        raise InvalidURL("This link is not a valid web address.")
    return _Target(scheme, parts.hostname, port or (443 if scheme == "https" else 80), path)


def check_url(url: str, allow_private: bool = False) -> None:
    """Refuse, without connecting, a link that ``fetch`` would refuse before its first request: not http(s), no
    host, or a host that resolves to a refused address (InvalidURL, HostNotFound, RefusedAddress)."""
    target = _parse(url)
    resolve(target.host, target.port, allow_private)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked beforehand, while the Host header (and TLS name) stay the link's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, address, timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.host)


class _Clock:
    """The deadline and the slow-transfer rule of one fetch, and the socket timeout that keeps both."""

    def __init__(self, timeout: float, min_rate: float, rate_window: float):
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.timeout = timeout
        self.min_rate = min_rate
        self.rate_window = rate_window
        self.window_start = self.start
        self.window_bytes = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise FetchTimeout(f"The download took longer than the limit of {self.timeout:g} seconds.")
        return left

    def socket_timeout(self) -> float:
        return max(0.01, min(self.remaining(), self.rate_window))

    def received(self, count: int) -> None:
        """Count ``count`` new bytes; raise when the last window was too slow or the deadline passed."""
        now = time.monotonic()
        self.window_bytes += count
        if now - self.window_start >= self.rate_window:
            if self.window_bytes < self.min_rate * (now - self.window_start):
                raise self.too_slow()
            self.window_start, self.window_bytes = now, 0
        self.remaining()

    def too_slow(self) -> SlowTransfer:
        return SlowTransfer(
            f"The server sent less than {self.min_rate:g} bytes a second for {self.rate_window:g} seconds;"
            " the download was stopped."
        )

    def stalled(self) -> FetchError:
        """What a socket timeout means: the deadline passed, or nothing arrived for a whole window."""
        if time.monotonic() >= self.deadline - 0.01:
            return FetchTimeout(f"The download took longer than the limit of {self.timeout:g} seconds.")
        return self.too_slow()


class GuardedResponse:
    """An answer after redirects: status, headers, the final URL, and the body read in chunks under the limits."""

    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, url: str, clock):
        self._connection = connection
        self._response = response
        self._clock: _Clock = clock
        self.url = url
        self.status = response.status
        self.reason = response.reason
        self.headers: Message = response.msg

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type() if self.headers.get("Content-Type") else ""

    @property
    def length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        return int(raw) if raw and raw.strip().isdigit() else None

    def read1(self, size: int = CHUNK) -> bytes:
        """Up to ``size`` bytes, as soon as some arrive; b"" at the end. Raises on timeouts and slow transfers."""
        sock = self._connection.sock
        try:
            if sock is not None:
                sock.settimeout(self._clock.socket_timeout())
            data = self._response.read1(size)
        except TimeoutError as error:
            raise self._clock.stalled() from error
        except (http.client.HTTPException, OSError) as error:
            raise ConnectionFailed("The connection broke during the download. Try again later.") from error
        self._clock.received(len(data))
        return data

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        while data := self.read1(size):
            yield data

    def close(self) -> None:
        self._response.close()
        self._connection.close()

    def __enter__(self) -> GuardedResponse:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_url(
    url: str,
    *,
    timeout: float,
    allow_private: bool = False,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    min_rate: float = 1024.0,
    rate_window: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> GuardedResponse:
    """Send one request under the guard, following redirects; returns the final answer whatever its status."""
    clock = _Clock(timeout, min_rate, rate_window)
    context = ssl_context or ssl.create_default_context()
    for _hop in range(MAX_REDIRECTS + 1):
        response = _request(url, clock, allow_private, method, headers, data, context)
        location = response.headers.get("Location")
        if response.status not in REDIRECT_STATUSES or not location:
            return response
        response.close()
        url = urljoin(url, location.strip())
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, data = "GET", None
    raise TooManyRedirects(f"The link redirected more than {MAX_REDIRECTS} times; it was not followed further.")


def _request(url, clock: _Clock, allow_private, method, headers, data, context) -> GuardedResponse:
    target = _parse(url)
    addresses = resolve(target.host, target.port, allow_private)
    sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
    last: Exception | None = None
    for address in addresses:
        if target.scheme == "https":
            connection: http.client.HTTPConnection = _PinnedHTTPSConnection(
                target.host, target.port, address, clock.socket_timeout(), context
            )
        else:
            connection = _PinnedHTTPConnection(target.host, target.port, address, clock.socket_timeout())
        try:
            connection.request(method, target.path, body=data, headers=sent)
            return GuardedResponse(connection, connection.getresponse(), url, clock)
        except TimeoutError as error:
            connection.close()
            raise clock.stalled() from error
        except ssl.SSLError as error:
            connection.close()
            raise ConnectionFailed(f"The secure connection to {target.host} failed: {error.reason}.") from error
        except (http.client.HTTPException, OSError) as error:
            connection.close()
            last = error
    raise ConnectionFailed(f"Could not connect to {target.host}. Check the link or try again later.") from last


# --- a whole file ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedFile:
    """A downloaded file the caller now owns (and removes or moves)."""

    path: Path
    source_url: str
    final_url: str
    content_type: str
    size: int
    filename: str
    """A name for the file from Content-Disposition or the final URL's path ("" when neither gives one)."""


def check_status(response: GuardedResponse) -> None:
    """Raise the specific error for a status that is not a success."""
    status = response.status
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise NotFound(f"The server says there is nothing at this link (HTTP {status}).", status)
    if status in (401, 403):
        raise AccessDenied(
            f"The server refused access (HTTP {status}): the video may need a login, or the site forbids downloads.",
            status,
        )
    raise HTTPStatusError(f"The server answered with an error (HTTP {status} {response.reason}).", status)


def fetch(
    url: str,
    dest_dir: str | os.PathLike,
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool = False,
    progress: Progress | None = None,
    headers: Mapping[str, str] | None = None,
    min_rate: float = 1024.0,
    rate_window: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchedFile:
    """Download ``url`` into a new file in ``dest_dir`` under every limit; nothing is left behind on failure."""
    with open_url(
        url,
        timeout=timeout,
        allow_private=allow_private,
        headers=headers,
        min_rate=min_rate,
        rate_window=rate_window,
        ssl_context=ssl_context,
    ) as response:
        check_status(response)
        total = response.length
        if total is not None and total > max_bytes:
            raise too_large(max_bytes)
        filename = _filename(response)
        handle, name = tempfile.mkstemp(dir=dest_dir, prefix="fetch-", suffix=Path(filename).suffix.lower()[:10])
        path = Path(name)
        try:
            size = _stream(response, handle, max_bytes, total, progress)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return FetchedFile(path, url, response.url, response.content_type, size, filename)


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"The file is larger than the limit of {max_bytes / 1024 / 1024:.0f} MB.")


def _stream(response: GuardedResponse, handle: int, max_bytes: int, total: int | None, progress) -> int:
    size = 0
    with os.fdopen(handle, "wb") as out:
        for chunk in response.chunks():
            size += len(chunk)
            if size > max_bytes:
                raise too_large(max_bytes)
            out.write(chunk)
            if progress is not None:
                progress(size, total)
    return size


def _filename(response: GuardedResponse) -> str:
    """The name the server suggests, else the last part of the final URL's path; only safe characters kept."""
    name = response.headers.get_filename() or unquote(urlsplit(response.url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^\w.\-]+", "_", os.path.basename(name.replace("\\", "/"))).strip("._")
    return name[:120]
