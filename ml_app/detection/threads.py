"""How many CPU threads PyTorch uses in this process: the worker sets them once when its process starts.

On a small server the analysis shares the cores with other work (a second worker, a training job, a test suite).
PyTorch's default, one intra-op thread per core, is the fastest on an idle machine; beside a competing process a
thread that loses its core holds up the others at every operator's barrier, which hurt the old heat maps' long
backward pass most. ``bench/bench_heatmaps.py --compete --threads 2 1`` measures each stage with and without a
competing 2-thread job for each setting, in one run; DETECTION_TORCH_THREADS picks one for the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


def set_threads(intra_op: int | None = None, inter_op: int | None = None) -> tuple[int, int]:
    """Set PyTorch's intra-op threads (None: leave its default, one per core) and inter-op threads (None: leave
    them; they can be set only before the first parallel work, later calls keep what is there). Returns both."""
    import torch

    if intra_op:
        torch.set_num_threads(intra_op)
    if inter_op:
        try:
            torch.set_num_interop_threads(inter_op)
        except RuntimeError:  # already started: keep what runs
            log.info("PyTorch's inter-op threads were already started; keeping %d", torch.get_num_interop_threads())
    return torch.get_num_threads(), torch.get_num_interop_threads()


@contextmanager
def limited(intra_op: int | None) -> Iterator[None]:
    """PyTorch on at most ``intra_op`` threads for the duration (None or 0: as it is), then as before. The heat maps
    are drawn this way: their backward passes suffered most from a competing process (bench_heatmaps.py)."""
    import torch

    before = torch.get_num_threads()
    if not intra_op or intra_op >= before:
        yield
        return
    torch.set_num_threads(intra_op)
    try:
        yield
    finally:
        torch.set_num_threads(before)
