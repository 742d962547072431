"""Slow clients under gunicorn's threaded workers (run.sh): a request body that stops arriving, or trickles in, ends
the request instead of holding one of the worker's threads for as long as the client likes.

gunicorn itself waits for a request's first bytes without a thread (gthread defers idle connections to its poller),
but once the application reads the body, each ``recv`` blocks the thread that runs the request. This WSGI middleware
gives every request with a body two limits:

* REQUEST_BODY_TIMEOUT: the socket's timeout, so that no single ``recv`` waits longer (a client that announces 1 MB,
  sends 1 KB and goes silent is answered within that time);
* REQUEST_BODY_MIN_RATE: a deadline of REQUEST_BODY_TIMEOUT + length / rate for the whole body; a client sending a
  byte now and then, just often enough to beat the timeout, has its reading side shut when it passes.

Either way reading the body raises TimeoutError, which Django turns into UnreadablePostError and the site answers
408 in the one error shape (ml_app.api.errors). A reverse proxy that buffers request bodies (README, "Production")
keeps slow clients away from the application altogether; this is the guard for when there is none (run.sh).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time


class _Deadlines:
    """One thread that shuts the reading side of sockets whose body deadline passed (not a timer per request)."""

    def __init__(self):
        self._heap: list[tuple[float, int, GuardedInput]] = []
        self._armed: set[int] = set()
        self._numbers = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, guarded: GuardedInput) -> int:
        with self._wake:
            number = next(self._numbers)
            heapq.heappush(self._heap, (deadline, number, guarded))
            self._armed.add(number)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="body-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()
            return number

    def disarm(self, number: int) -> None:
        with self._wake:
            self._armed.discard(number)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # disarmed: the request is over
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, number, guarded = self._heap[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                heapq.heappop(self._heap)
                self._armed.discard(number)
            guarded.trip()


_deadlines = _Deadlines()


class GuardedInput:
    """``wsgi.input`` of one request: reading raises TimeoutError once a limit is passed."""

    def __init__(self, stream, sock: socket.socket, length: int):
        self._stream, self._sock, self._left = stream, sock, length
        self.tripped = False
        self.ticket: int | None = None  # its deadline, disarmed as soon as the whole body is in

    def trip(self) -> None:
        """The deadline passed: wake up a ``recv`` that is waiting and refuse further reads."""
        self.tripped = True
        with contextlib.suppress(OSError):  # already closed
            self._sock.shutdown(socket.SHUT_RD)

    def _checked(self, read, size) -> bytes:
        try:
            data = read(size)
        except OSError as exc:
            if self.tripped or isinstance(exc, TimeoutError):
                raise TimeoutError("the request body stalled or came in too slowly") from exc
            raise
        self._left -= len(data)
        if self.tripped and self._left > 0:
            raise TimeoutError("the request body came in too slowly")
        if self._left <= 0 and self.ticket is not None:
            _deadlines.disarm(self.ticket)
        return data

    def read(self, size: int = -1) -> bytes:
        return self._checked(self._stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._checked(self._stream.readline, size)


class BodyGuard:
    """WSGI middleware; applies only under gunicorn (which hands the application its socket)."""

    def __init__(self, app, timeout: float, min_rate: float):
        self.app, self.timeout, self.min_rate = app, timeout, min_rate

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        raw = str(environ.get("CONTENT_LENGTH") or "")
        length = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0
        http1 = str(environ.get("SERVER_PROTOCOL", "")).startswith("HTTP/1")  # an HTTP/2 socket carries many streams
        if sock is None or not http1 or self.timeout <= 0 or length <= 0:
            return self.app(environ, start_response)
        sock.settimeout(self.timeout)
        guarded = GuardedInput(environ["wsgi.input"], sock, length)
        environ["wsgi.input"] = guarded
        if self.min_rate > 0:
            guarded.ticket = _deadlines.arm(time.monotonic() + self.timeout + length / self.min_rate, guarded)
        try:
            return self.app(environ, start_response)
        finally:
            if guarded.ticket is not None:
                _deadlines.disarm(guarded.ticket)
            # The response is written as gunicorn always writes it: a timeout there would only log a traceback.
            sock.settimeout(None)
