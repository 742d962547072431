"""An exported ONNX model behind the torch model's call interface, run by onnxruntime on the CPU.

``manage.py export_onnx`` writes the network with dynamic batch and time axes and puts the checkpoint's description
(architecture, every preprocessing setting, sequence length, metrics; no weights) into the file's metadata under
``deepfake_checkpoint``. Loading reads the settings from there, so an ``.onnx`` file is used exactly like a ``.pt``
checkpoint: ``--checkpoint model.onnx``, or a ``MODEL_MAPPING`` entry naming one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CheckpointFile, checkpoint_from_payload
from .errors import CheckpointNotFound, ConfigurationError, NotACheckpoint
from .files import file_sha256

METADATA_KEY = "deepfake_checkpoint"
INPUT_NAME = "clips"
OUTPUT_NAME = "logits"


def _runtime():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a dependency in requirements.txt
        raise ConfigurationError("onnxruntime is needed to run .onnx models: pip install -r requirements.txt") from exc
    return onnxruntime


class OnnxModel:
    """``(batch, time, 3, H, W)`` float tensor -> logits ``(batch, 2)`` tensor, like ``DeepfakeDetector``."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        runtime = _runtime()
        options = runtime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = runtime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise NotACheckpoint(
                f"'{Path(path).name}' is not a usable ONNX model ({str(exc).splitlines()[0]})."
            ) from exc
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        array = clips.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def eval(self) -> OnnxModel:
        return self

    def to(self, *args: Any, **kwargs: Any) -> OnnxModel:
        return self  # always on the CPU


def load_onnx_checkpoint(path: str | os.PathLike) -> tuple[CheckpointFile, OnnxModel]:
    """The checkpoint description stored in an exported file, and the model to run it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFound(f"ONNX model '{path}' does not exist.")
    model = OnnxModel(path)
    text = model.metadata().get(METADATA_KEY)
    if not text:
        raise NotACheckpoint(
            f"'{path.name}' is an ONNX model without this project's settings in its metadata; export it with "
            "'python manage.py export_onnx CHECKPOINT'."
        )
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise NotACheckpoint(f"'{path.name}': its {METADATA_KEY} metadata is not JSON ({exc}).") from exc
    checkpoint = checkpoint_from_payload({**payload, "state_dict": {}}, path.name)
    checkpoint.path, checkpoint.sha256 = path, file_sha256(path)
    return checkpoint, model
