"""Turning face sequences into fake probabilities: the one function from logits to a probability, and the batch
scorer that runs the network while the next windows are decoded.

Training's validation, ``evaluate_model`` and the app all call ``fake_probabilities``, so a checkpoint's class order
is read in exactly one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from .model_loading import LoadedModel
from .preprocessing import crops_to_tensor
from .timing import StageTimer


def fake_probabilities(logits: torch.Tensor, fake_index: int) -> torch.Tensor:
    """``(batch, 2)`` logits -> ``(batch,)`` probability of the FAKE class (at ``fake_index`` in the class order)."""
    return torch.softmax(logits.float(), dim=1)[:, fake_index]


# Called with each scored sequence's probability, in the order the sequences were added.
ScoreSink = Callable[[float], None]


class BatchScorer:
    """Collects face sequences and runs the network on ``batch_size`` of them at a time.

    With ``background`` the network runs in a second thread while the caller decodes and detects the next windows:
    PyTorch releases the GIL during its kernels, and face detection runs on one core, so the two overlap.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int, timer: StageTimer, background: bool = False):
        self.loaded = loaded
        self.batch_size = max(1, batch_size)
        self.timer = timer
        self._pending: list[tuple[ScoreSink, np.ndarray]] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer") if background else None
        self._running: list[Future[float]] = []

    def add(self, crops: np.ndarray, sink: ScoreSink) -> None:
        """Queue one sequence of crops ``(N, S, S, 3)`` in the model's colour order; ``sink`` receives its score."""
        self._pending.append((sink, crops))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Score what is pending (in the background thread, if there is one)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        if self._pool is None:
            self.timer.add("network", self._score(batch))
        else:
            self._running.append(self._pool.submit(self._score, batch))

    def finish(self) -> None:
        """Score everything still pending and wait until every score is in."""
        self.flush()
        try:
            for future in self._running:
                self.timer.add("network", future.result())
        finally:
            self._running.clear()
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _score(self, batch: list[tuple[ScoreSink, np.ndarray]]) -> float:
        started = time.perf_counter()
        prep = self.loaded.checkpoint.preprocessing
        with torch.inference_mode():
            clips = crops_to_tensor(np.stack([crops for _, crops in batch]), prep).to(self.loaded.device)
            probabilities = fake_probabilities(self.loaded.scoring(clips), prep.fake_index).cpu().tolist()
        for (sink, _), probability in zip(batch, probabilities, strict=True):
            sink(float(probability))
        return time.perf_counter() - started
