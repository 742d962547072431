"""Face descriptors computed in a process of their own while the analysis goes on.

The descriptor that links people across windows is dlib's ResNet, and dlib holds the GIL for the whole of one
(0.1 s): beside it, a thread that decodes stalls (30 frames of 1080p: 0.23 s alone, 8 s beside a thread computing
descriptors; ``bench/bench_stage_costs.py``). So descriptors were computed after the last window, on one core while
the other waited: a fifth of a whole-video analysis. A helper process (one per process, started on first use; it
imports NumPy, OpenCV and dlib, not PyTorch) computes each window's descriptors while later windows are decoded and
searched. It runs the very function the detectors' ``encode`` runs on the same pixels, so the descriptors, and the
people they link, are the same to the last bit. Where the process cannot start, dies or does not answer, the
descriptors are computed here as before and the next analysis starts a new process.

The helper is a plain child process with two pipes, not ``multiprocessing``'s spawn: spawn runs the parent's main
script again in the child, which a script without a ``__main__`` guard (a user's, a benchmark's) does not survive.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np

from .faces import FaceDetector
from .faces.dlib_models import face_descriptor, model
from .geometry import Box

log = logging.getLogger(__name__)

ANSWER_SECONDS = 60.0  # a descriptor takes 0.1 s; one not back by then is computed here instead
MAX_FAILURES = 3  # helpers that may fail in one process before its faces are described here for good
_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class HelperGone(RuntimeError):
    """The helper process ended, or its pipe broke."""


class DescriptorHelper:
    """One helper process (``python -m ml_app.detection.descriptor_process``) and the thread that reads its answers."""

    def __init__(self) -> None:
        path = os.pathsep.join(filter(None, [_PROJECT, os.environ.get("PYTHONPATH")]))
        to_child, requests = os.pipe()
        answers, from_child = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ml_app.detection.descriptor_process"],
                stdin=to_child,
                stdout=from_child,
                env={**os.environ, "PYTHONPATH": path},
                close_fds=True,
            )
        except BaseException:
            os.close(requests)
            os.close(answers)
            raise
        finally:
            os.close(to_child)
            os.close(from_child)
        self._send = Connection(requests, readable=False)
        self._receive = Connection(answers, writable=False)
        self._lock = threading.Lock()
        self._pending: dict[int, Future[np.ndarray]] = {}
        self._numbers = itertools.count()
        self._outbox: queue.SimpleQueue[tuple[int, np.ndarray, Box] | None] = queue.SimpleQueue()
        self.broken: BaseException | None = None
        threading.Thread(target=self._write, name="descriptor-requests", daemon=True).start()
        threading.Thread(target=self._read, name="descriptor-answers", daemon=True).start()

    def submit(self, patch: np.ndarray, box: Box) -> Future[np.ndarray]:
        """Ask for the descriptor of the face at ``box`` in ``patch``; HelperGone if the helper is gone."""
        future: Future[np.ndarray] = Future()
        with self._lock:
            if self.broken is not None:
                raise HelperGone(str(self.broken))
            number = next(self._numbers)
            self._pending[number] = future
        self._outbox.put((number, patch, box))  # sent by the writer thread: the analysis never waits on the pipe
        return future

    def _write(self) -> None:
        try:
            while (request := self._outbox.get()) is not None:
                self._send.send(request)
        except OSError as exc:  # the helper is gone: the reader fails what is pending when its pipe ends
            with self._lock:
                self.broken = self.broken or exc
        finally:
            self._send.close()

    def _read(self) -> None:
        try:
            while True:
                number, ok, value = self._receive.recv()
                with self._lock:
                    future = self._pending.pop(number)
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (EOFError, OSError) as exc:
            with self._lock:
                self.broken = self.broken or exc
                pending, self._pending = self._pending, {}
            for future in pending.values():
                future.set_exception(HelperGone(f"the descriptor process ended ({exc!r})"))
        finally:
            self._receive.close()

    def close(self) -> None:
        """End the helper: it reads the end of its requests and exits (killed if it has not within 2 s)."""
        with self._lock:
            self.broken = self.broken or HelperGone("closed")
        self._outbox.put(None)  # the writer closes the pipe: the helper reads its end and exits
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_lock = threading.Lock()
_helpers: list[DescriptorHelper] = []
_failures = [0]


def helper() -> DescriptorHelper | None:
    """This process's descriptor helper, started on first use (again after one broke, up to ``MAX_FAILURES``
    times); None if none can start."""
    with _lock:
        if _helpers and _helpers[0].broken is None:
            return _helpers[0]
        if _helpers:  # it ended since it was last asked for
            _count_failure()
            _helpers.pop().close()
        if _failures[0] >= MAX_FAILURES:
            return None
        try:
            _helpers.append(DescriptorHelper())
        except OSError as exc:
            _failures[0] = MAX_FAILURES
            log.warning("Face descriptors are computed in this process: no helper process (%s)", exc)
            return None
        return _helpers[0]


def warm() -> None:
    """Start the helper now (a worker does this when it starts): it loads dlib's models before the first video."""
    helper()


def _discard(broken: DescriptorHelper, reason: BaseException) -> None:
    log.warning("The face descriptor process failed (%s: %s); another starts next time", type(reason).__name__, reason)
    with _lock:
        if _helpers and _helpers[0] is broken:
            _helpers.clear()
            _count_failure()
    broken.close()


def _count_failure() -> None:
    """One more helper failed (the caller holds ``_lock``); past ``MAX_FAILURES`` none is started again."""
    _failures[0] += 1
    if _failures[0] == MAX_FAILURES:
        log.warning(
            "%d face descriptor processes failed: faces are described in this process from now on", MAX_FAILURES
        )


@atexit.register
def _stop() -> None:
    with _lock:
        helpers, _helpers[:] = list(_helpers), []
    for one in helpers:
        one.close()


def encodes_in_process(detector: FaceDetector) -> bool:
    """Whether ``detector.encode`` is dlib's descriptor (``face_descriptor``), which the helper computes."""
    return bool(getattr(detector, "encodes_with_dlib", False))


@dataclass
class _Window:
    index: int
    faces: dict[int, tuple[np.ndarray, Box]]
    futures: dict[int, Future[np.ndarray]]
    helper: DescriptorHelper | None


@dataclass
class WindowDescriptors:
    """The descriptors of each window's tracks, asked for as windows finish and collected for linking people."""

    detector: FaceDetector
    use_process: bool = True
    _windows: list[_Window] = field(default_factory=list)

    def add(self, window_index: int, faces: Mapping[int, tuple[np.ndarray, Box]]) -> None:
        """A finished window's tracks: track id -> (the patch around the face, the face's box in that patch)."""
        process = helper() if self.use_process and faces and encodes_in_process(self.detector) else None
        futures: dict[int, Future[np.ndarray]] = {}
        if process is not None:
            try:
                futures = {track: process.submit(*patch) for track, patch in faces.items()}
            except HelperGone as exc:
                _discard(process, exc)
                process, futures = None, {}
        self._windows.append(_Window(window_index, dict(faces), futures, process))

    def collect(self) -> list[tuple[int, dict[int, np.ndarray]]]:
        """Every window's descriptors, in the order the windows were added."""
        return [(window.index, {track: self._one(window, track) for track in window.faces}) for window in self._windows]

    def _one(self, window: _Window, track: int) -> np.ndarray:
        future = window.futures.get(track)
        if future is not None and window.helper is not None:
            try:
                return future.result(timeout=ANSWER_SECONDS)
            except (HelperGone, FutureTimeout) as exc:  # the helper died or hangs: another one next time
                _discard(window.helper, exc)
                window.helper = None
            except Exception:  # the helper's own error: computed again below, it is raised here
                log.debug("The descriptor process raised; describing the face here", exc_info=True)
        return self.detector.encode(*window.faces[track])


def _serve() -> None:
    """The helper's loop: (number, patch, box) in on stdin, (number, ok, descriptor or exception) out on stdout."""
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # whatever a library prints goes to stderr, never into the answers
    requests = Connection(os.dup(0), writable=False)
    model("shape_predictor_5")
    model("encoder")
    while True:
        try:
            number, patch, box = requests.recv()
        except (EOFError, OSError):
            return
        try:
            answers.send((number, True, face_descriptor(patch, box)))
        except Exception as exc:  # sent back: the caller describes the face itself and meets the same error
            answers.send((number, False, exc))


if __name__ == "__main__":
    _serve()
