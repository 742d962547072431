"""Seconds spent per stage of an analysis (probe, decode, detect, crop, network), for the result and the benchmark.

Stages that run in a thread of their own (decode in the prefetcher, network in the scorer) overlap the others, so
the stages add up to more than the total; ``decode_wait`` is the part of the window loop spent waiting for frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class StageTimer:
    """Seconds spent per stage; stages may be entered many times and from several threads."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, name: str, iterator: Iterator[T]) -> Iterator[T]:
        """Wrap an iterator so the time spent producing items counts for ``name``."""
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(name, time.perf_counter() - started)
                return
            self.add(name, time.perf_counter() - started)
            yield item
