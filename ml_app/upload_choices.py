"""The upload form's choice of analysis in words for people: Quick, Standard, Thorough (frames per window, shortest
first), with the technical names (checkpoint, reported accuracy) one click away under "Technical details"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .detection.defaults import FRAME_MODEL_LENGTH

NAMES = {1: ["Standard"], 2: ["Quick", "Thorough"], 3: ["Quick", "Standard", "Thorough"]}
EXPLANATIONS = {
    "Quick": "fewer frames per window: faster, and works on shorter clips",
    "Standard": "a balance of speed and motion",
    "Thorough": "more frames per window: more motion to judge, slower, needs longer clips",
}


@dataclass(frozen=True)
class Choice:
    length: int  # frames per window: the form's value
    name: str  # Quick, Standard, Thorough, or Frame by frame
    explanation: str
    checkpoint: Any  # the Checkpoint (its name and accuracy_label are the technical details)

    @property
    def label(self) -> str:
        frames = "1 frame at a time" if self.length == FRAME_MODEL_LENGTH else f"{self.length} frames per window"
        return f"{self.name} · {frames}"


def _names(count: int) -> list[str]:
    if count == 0:
        return []
    if count in NAMES:
        return NAMES[count]
    middle = [f"Standard {n}" for n in range(1, count - 1)]
    return ["Quick", *middle, "Thorough"]


def plain_choices(checkpoints: Mapping[int, Any]) -> list[Choice]:
    """One choice per active checkpoint: the frame model first (if offered), then windows from short to long."""
    lengths = sorted(length for length in checkpoints if length != FRAME_MODEL_LENGTH)
    choices = []
    if FRAME_MODEL_LENGTH in checkpoints:
        choices.append(
            Choice(
                FRAME_MODEL_LENGTH,
                "Frame by frame",
                "each frame on its own, no motion: the fastest",
                checkpoints[FRAME_MODEL_LENGTH],
            )
        )
    for length, name in zip(lengths, _names(len(lengths)), strict=True):
        base = name.split(" ")[0]
        choices.append(Choice(length, name, EXPLANATIONS[base], checkpoints[length]))
    return choices
