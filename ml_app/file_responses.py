"""Serving stored media through views: with HTTP Range support, so the result page's video player can seek.

A Range header that is not one plain ``bytes=first-last`` range is ignored (the whole file, as RFC 9110 allows); a
range outside the file, numbers longer than any file size included, is answered 416 in the one error shape."""

from __future__ import annotations

import mimetypes
import os
import re
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse

from .api.errors import error_body

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_BEYOND = 1 << 62  # what a number of more than 18 digits stands for: past the end of any file


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _BEYOND


class _Slice:
    """A read-only window onto part of a file, for FileResponse."""

    def __init__(self, path: Path, start: int, length: int, chunk: int = 1 << 16):
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by FileResponse
        self._handle.seek(start)
        self._left = length
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._handle.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


def ranged_file_response(request: HttpRequest, path: Path, content_type: str | None = None) -> HttpResponse:
    """The file, or the byte range the client asked for (206), or 416 for a range outside it."""
    size = os.path.getsize(path)
    content_type = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    header = request.headers.get("Range", "")
    match = _RANGE.match(header.strip()) if header else None
    if not match:
        response = FileResponse(open(path, "rb"), content_type=content_type)  # noqa: SIM115
        response["Accept-Ranges"] = "bytes"
        return response
    first, last = match.groups()
    if first == "":  # the last N bytes
        length = min(_position(last or "0"), size)
        start, end = size - length, size - 1
    else:
        start = _position(first)
        end = min(_position(last), size - 1) if last else size - 1
    if start >= size or start > end:
        body = error_body("range_not_satisfiable", f"The range asked for ({header[:40]}) is outside the {size} bytes.")
        response = JsonResponse(body, status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    response = FileResponse(_Slice(path, start, end - start + 1), status=206, content_type=content_type)
    response["Content-Length"] = str(end - start + 1)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response
