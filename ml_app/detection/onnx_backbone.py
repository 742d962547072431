"""Scoring on the CPU with the backbone run by onnxruntime: the same weights and numbers, about 2.5x the speed.

PyTorch runs a MobileNetV2 one operator at a time, each a separate call that takes the GIL between kernels;
onnxruntime runs the whole backbone (its batch norms folded into the convolutions) as one call without the GIL, so
the scorer's thread no longer waits on the threads that decode and look for faces, and the same frames cost
a third of the CPU time (bench/README.md, issue 29). Only the backbone and its pooling are exported; the LSTM and
the head stay PyTorch's (``DeepfakeDetector.head``), so every kind of head scores exactly as before. Features agree
with PyTorch's to about 1e-5, far inside what differs between machines anyway.

The exported graph is kept in the derived-model cache (``faces.model_cache``), named by the checkpoint file's sha256,
so a process pays for the export (about 1.5 s) only the first time a checkpoint is used on the machine. Heat maps
(they need gradients), training's validation, ``evaluate_model`` and ``calibrate_model`` keep PyTorch's network:
the figures of a model's report, and the scores its calibration is fitted on, agree with training's to the last
digit (a rebuilt model is compared with a shipped file by them, and near-tied scores of a barely trained model
would otherwise order differently). Where the export or the session fails, scoring stays PyTorch's and the log
says why.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .faces.model_cache import cached_file
from .network import INFERENCE_CHUNK, DeepfakeDetector

log = logging.getLogger(__name__)

_GRAPH_VERSION = 1  # part of the cache's file name: raise it when the export below changes
_PREFIX = "backbone-"
KEEP_GRAPHS = 12  # exported backbones kept in the cache, the most recently used (a worker uses 3-5 checkpoints)
_INPUT, _OUTPUT = "frames", "features"


class _Trunk(nn.Module):
    """Backbone + global pooling: ``(n, 3, H, W)`` -> ``(n, features)``, what ``frame_features`` computes."""

    def __init__(self, network: DeepfakeDetector):
        super().__init__()
        self.backbone, self.pool = network.backbone, network.pool

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.pool(self.backbone(frames)).flatten(1)


def _export(network: DeepfakeDetector, image_size: int) -> bytes:
    """The network's backbone and pooling as an ONNX graph with a free batch axis."""
    example = torch.zeros(2, 3, image_size, image_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its own deprecation
        torch.onnx.export(
            _Trunk(network).eval(),
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object is accepted, though the stub names paths only
            input_names=[_INPUT],
            output_names=[_OUTPUT],
            dynamic_axes={_INPUT: {0: "frames"}, _OUTPUT: {0: "frames"}},
            dynamo=False,
        )
    return buffer.getvalue()


def backbone_graph(network: DeepfakeDetector, image_size: int, sha256: str | None) -> bytes:
    """The exported graph, from the cache when this checkpoint (``sha256`` of its file) was exported before."""
    if not sha256:
        return _export(network, image_size)
    stem = f"{_PREFIX}{sha256[:16]}-{image_size}px-v{_GRAPH_VERSION}-torch{torch.__version__.split('+')[0]}"
    cached = cached_file(stem, ".onnx", lambda target: target.write_bytes(_export(network, image_size)))
    if cached is None:
        return _export(network, image_size)
    graph = cached.read_bytes()
    _keep_recent(cached)
    return graph


def _keep_recent(used: Path) -> None:
    """Mark ``used`` as just used and delete all but the ``KEEP_GRAPHS`` most recently used graphs: every checkpoint
    ever loaded would otherwise leave its backbone (9 MB for MobileNetV2, 90 MB for ResNeXt50) in the cache."""
    try:
        os.utime(used)
        graphs = sorted(used.parent.glob(f"{_PREFIX}*.onnx"), key=lambda path: path.stat().st_mtime_ns, reverse=True)
        for old in graphs[KEEP_GRAPHS:]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # another process removed one first, or the folder is read-only: nothing is lost
        log.debug("Could not tidy the backbone graphs beside %s: %s", used, exc)


class OnnxBackboneNetwork:
    """A ``ScoringNetwork``: clips in, logits out, the backbone by onnxruntime and the head by ``network``."""

    def __init__(self, network: DeepfakeDetector, graph: bytes, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle pool threads sleep instead of spinning: on a small server they would take the cores that decode
        # and look for faces while this thread waits for the next batch
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.network = network
        self.threads = max(1, threads)
        self._session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """``(n, 3, H, W)`` -> ``(n, features)``, ``INFERENCE_CHUNK`` frames at a time as PyTorch scores them."""
        array = frames.detach().to("cpu", torch.float32).contiguous().numpy()
        parts = [
            self._session.run([_OUTPUT], {_INPUT: array[start : start + INFERENCE_CHUNK]})[0]
            for start in range(0, len(array), INFERENCE_CHUNK)
        ]
        return torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0])

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        clips = self.network.backbone_clips(clips)
        batch, steps = clips.shape[:2]
        with torch.inference_mode():
            return self.network.head(self.features(clips.flatten(0, 1)).view(batch, steps, -1))

    def eval(self) -> OnnxBackboneNetwork:
        return self


def scoring_network(
    network: DeepfakeDetector, image_size: int, sha256: str | None, device: torch.device
) -> DeepfakeDetector | OnnxBackboneNetwork:
    """What scores a loaded checkpoint: on the CPU the onnxruntime backbone, else (or if it fails) ``network``."""
    if device.type != "cpu":
        return network
    try:
        return OnnxBackboneNetwork(network, backbone_graph(network, image_size, sha256), torch.get_num_threads())
    except Exception as exc:  # the exporter's and onnxruntime's own error types; scoring still works without it
        log.warning("Scoring with PyTorch's backbone: onnxruntime's failed (%s: %s)", type(exc).__name__, exc)
        return network
