"""Converting the original ResNeXt+LSTM app's widely shared checkpoints into this project's format.

Those files are bare state dicts of this module::

    model  = nn.Sequential(*list(resnext50_32x4d().children())[:-2])   -> model.0 ... model.7
    lstm   = nn.LSTM(2048, 2048, 1, False)   # the 4th positional argument is *bias*: no bias weights
    linear1 = nn.Linear(2048, 2)

The app fed them face crops that it cut with face_recognition's HOG detector at full resolution (tight box, no margin),
resized to 112x112 with PIL's bilinear filter, in OpenCV's BGR channel order, normalised with ImageNet statistics; class
0 meant FAKE. Its LSTM was not batch-first, so a (1, N, 2048) input ran as N one-step sequences and the score came from
the last frame alone. All of this is recorded in the converted checkpoint, and the network's ``legacy_last_frame``
head reproduces the computation exactly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CheckpointFile, looks_like_legacy_state_dict
from .errors import ArchitectureMismatch, ConfigurationError, NotACheckpoint
from .network import ModelConfig
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, DetectorSettings, Preprocessing

_NAME = re.compile(r"model_(?P<accuracy>\d+(?:\.\d+)?)_acc_(?P<frames>\d+)_frames", re.IGNORECASE)


def legacy_architecture() -> ModelConfig:
    return ModelConfig(
        backbone="resnext50_32x4d",
        hidden_size=2048,
        num_layers=1,
        bidirectional=False,
        dropout=0.4,
        lstm_bias=False,
        head="legacy_last_frame",
    )


def legacy_preprocessing() -> Preprocessing:
    return Preprocessing(
        # face_recognition.face_locations(frame) as the original called it; the scored last frame gets a full scan
        detector=DetectorSettings(model="hog", max_side=None, upsample=1, scan_last_frame=True),
        crop="box",
        margin=0.0,
        image_size=112,
        resize="pil_bilinear",
        colour_order="BGR",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        class_order=("FAKE", "REAL"),
    )


def parse_legacy_name(name: str) -> tuple[float | None, int | None]:
    """``model_87_acc_20_frames_final_data.pt`` -> (87.0, 20): reported accuracy (percent) and sequence length."""
    match = _NAME.search(name)
    if not match:
        return None, None
    return float(match.group("accuracy")), int(match.group("frames"))


def _rename(key: str) -> str | None:
    if key.startswith("module."):
        key = key[len("module.") :]
    if key.startswith("model."):
        return "backbone." + key[len("model.") :]
    if key.startswith("lstm."):
        return key
    if key.startswith("linear1."):
        return "classifier." + key[len("linear1.") :]
    return None


def convert_legacy_state_dict(
    state: dict[str, Any],
    source_name: str,
    source_sha256: str | None = None,
    sequence_length: int | None = None,
    accuracy: float | None = None,
) -> CheckpointFile:
    """Build a checkpoint from the original app's state dict. The caller builds the model to check the weights."""
    if not looks_like_legacy_state_dict(state):
        raise NotACheckpoint(
            f"'{source_name}' is not a state dict of the original ResNeXt+LSTM app "
            "(expected keys model.0.weight, lstm.weight_ih_l0 and linear1.weight)."
        )
    name_accuracy, name_frames = parse_legacy_name(Path(source_name).name)
    sequence_length = sequence_length or name_frames
    if sequence_length is None:
        raise ConfigurationError(
            f"The sequence length of '{source_name}' is not in its name (like model_87_acc_20_frames_...). "
            "Give it with --sequence-length."
        )
    accuracy = accuracy if accuracy is not None else name_accuracy
    weights: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        new_key = _rename(key)
        if new_key is None or not isinstance(value, torch.Tensor):
            ignored.append(key)
            continue
        weights[new_key] = value.detach().float() if value.is_floating_point() else value.detach()
    if "lstm.bias_ih_l0" in weights:
        raise ArchitectureMismatch(
            f"'{source_name}' has LSTM bias weights; the original app's LSTM had none: "
            "it is not one of its checkpoints."
        )
    metrics: dict[str, Any] = {}
    if accuracy is not None:
        metrics["accuracy"] = accuracy / 100.0 if accuracy > 1 else accuracy
        metrics["accuracy_source"] = "reported in the original file name; not measured here"
    return CheckpointFile(
        architecture=legacy_architecture(),
        preprocessing=legacy_preprocessing(),
        sequence_length=int(sequence_length),
        state_dict=weights,
        name=Path(source_name).stem,
        training={"trained_by": "original ResNeXt+LSTM app", "untrained": False},
        metrics=metrics,
        origin={
            "kind": "legacy_import",
            "source_file": Path(source_name).name,
            "source_sha256": source_sha256,
            "ignored_keys": ignored,
            "original_sampling": "the first N frames of the video; here windows are spread over the whole video",
            "original_no_face": "the original used the whole frame when no face was found; here such frames are "
            "reported instead",
        },
    )
