"""Heat maps: Grad-CAM (the grad-cam package, pytorch-grad-cam) of a scored face sequence, made after the verdict.

A heat map shows which pixels of one face crop moved the network's score towards FAKE. It is not a map of "the fake
part" of a face and it is not proof: a network also reacts to lighting, compression, blur or the background, and the
windows of a real face have heat maps too.

How a map is made:

* **Input**: the track's crops as the network was fed them, through the checkpoint's own ``crops_to_tensor`` (the
  colour order, size and normalisation it was trained with; the one function scoring uses too).
* **Target**: the log-odds of FAKE, the FAKE logit minus the REAL logit (class order from the checkpoint): exactly
  what the softmax turns into the fake probability, so the map explains the score itself rather than one logit. For
  a frame model (``frame`` head, the log of the frames' mean probabilities) the same difference is the log-odds of the
  window's mean probability.
* **Layer**: the backbone's last convolutional block, named per backbone in ``network.BACKBONE_TABLE``
  (``cam_layer``).
* **Frames**: the backbone runs a window's T frames as one batch, so that layer gives T activation maps and the
  gradient reaches every one of them (through the LSTM, or through the frame head's mean). The channel weights are
  the gradient averaged over the frames as well as over space, as Grad-CAM does for video: one set for the clip.
  Per-frame weights would carry the LSTM's position effect: in the mean of the LSTM's outputs an early frame reaches
  more outputs, so with the shipped 20-frame model the first frame's gradient is nearly twice the last's, and frame 0
  won in every window of a real clip. With shared weights a frame's map depends on what that frame shows.
* **The frame mapped**: the one whose map, before grad-cam stretches each to [0, 1], sums highest, i.e. the frame
  carrying the most positive evidence for FAKE. The stretched maps all peak at 1 and cannot be compared; the raw
  ones are on one scale (one target, one layer, one set of weights). The same rule serves both heads: the mean head
  has no per-frame score to pick by. The ``legacy_last_frame`` head feeds only the last frame to the backbone, so
  its map is always of that frame.

Which windows: those of FAKE and INCONCLUSIVE people (``flagged``, the default), every scored window (``all``) or
none (``off``). ONNX exports have no gradients: their results say that heat maps need the ``.pt`` checkpoint.

torch and grad-cam are imported only when a map is made (grad-cam's import alone takes seconds): the settings read
this module's modes at every start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ConfigurationError
from .naming import person_number
from .results import AnalysisResult, Heatmap, TrackScore, WindowResult

if TYPE_CHECKING:
    import torch

    from .checkpoints import CheckpointFile
    from .model_loading import LoadedModel

log = logging.getLogger(__name__)

HeatmapMode = Literal["off", "flagged", "all"]
HEATMAP_MODES: tuple[HeatmapMode, ...] = ("off", "flagged", "all")
FLAGGED_VERDICTS = ("FAKE", "INCONCLUSIVE")
METHOD = "Grad-CAM"
TARGET = "log-odds of FAKE (the FAKE logit minus the REAL logit)"
OVERLAY_IMAGE_WEIGHT = 0.5  # the crop's share of the overlay; the colour map has the rest

# The hooks grad-cam puts on a layer belong to the model, which a process shares between its analyses.
_hooks_lock = threading.Lock()


def parse_mode(value: str) -> HeatmapMode:
    """``off``, ``flagged`` or ``all`` (any case); a ConfigurationError naming the choices otherwise."""
    text = value.strip().lower()
    for mode in HEATMAP_MODES:
        if text == mode:
            return mode
    raise ConfigurationError(f"{value!r} is not a heat-map mode: choose {', '.join(HEATMAP_MODES)}.")


def onnx_note(checkpoint: CheckpointFile) -> str:
    """Why an ONNX export has no heat maps, and what to do."""
    where = f"'{checkpoint.path.name}'" if checkpoint.path else "this file"
    return (
        f"Heat maps need the .pt checkpoint: {where} (checkpoint {checkpoint.name}) is an ONNX export, which gives "
        "no gradients. Analyse with the .pt file it was exported from to get them."
    )


def select_tracks(result: AnalysisResult, mode: HeatmapMode) -> list[tuple[WindowResult, TrackScore]]:
    """The scored tracks that get a heat map: every one (``all``), those of FAKE and INCONCLUSIVE people
    (``flagged``), or none (``off``)."""
    if mode == "off":
        return []
    flagged = {person.person_id for person in result.people if person.verdict in FLAGGED_VERDICTS}
    return [
        (window, track)
        for window in result.windows
        if window.status == "scored"
        for track in window.tracks
        if mode == "all" or track.person_id in flagged
    ]


def _fake_log_odds(fake_index: int):
    """grad-cam's target: called with one clip's output row, gives the FAKE logit minus the REAL one."""

    def target(output: torch.Tensor) -> torch.Tensor:
        return output[fake_index] - output[1 - fake_index]

    return target


@contextmanager
def _gradients(device: torch.device, has_lstm: bool) -> Iterator[None]:
    """Gradients on, whatever the caller's mode; on CUDA without cuDNN for an LSTM, whose cuDNN kernel runs
    backwards only in training mode (and training mode would switch dropout on)."""
    import torch

    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=not (has_lstm and device.type == "cuda")):
        yield


def compute_heatmap(loaded: LoadedModel, crops: np.ndarray) -> Heatmap:
    """The Grad-CAM heat map of one face sequence: ``crops`` (N, S, S, 3) uint8 RGB as a ``TrackScore`` keeps them.

    Returns the most suspicious frame's map at the crop's size (see the module's docstring), finite, in [0, 1] and
    peaking at 1 where there is any positive evidence (all zeros where there is none). A ConfigurationError for a
    network without gradients (an ONNX export), a ValueError for crops of the wrong shape.
    """
    from pytorch_grad_cam import GradCAM  # type: ignore[import-untyped]
    from pytorch_grad_cam.utils.image import show_cam_on_image  # type: ignore[import-untyped]

    from .network import DeepfakeDetector, get_backbone
    from .prediction import display_crops
    from .preprocessing import crops_to_tensor

    class ClipGradCAM(GradCAM):
        """grad-cam for ``(1, T, 3, H, W)`` clips: one map per frame, at the frames' height and width (grad-cam
        would read a 5-d input as a 3-d volume), with one set of channel weights for the whole clip."""

        def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
            return input_tensor.size(-1), input_tensor.size(-2)

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads) -> np.ndarray:
            per_frame = super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)  # (T, C)
            return np.broadcast_to(per_frame.mean(axis=0, keepdims=True), per_frame.shape)

    network, checkpoint = loaded.model, loaded.checkpoint
    if not isinstance(network, DeepfakeDetector):
        raise ConfigurationError(onnx_note(checkpoint))
    prep = checkpoint.preprocessing
    size = prep.image_size
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or not len(crops) or crops.dtype != np.uint8:
        raise ValueError(f"expected (N, {size}, {size}, 3) uint8 crops, got {crops.dtype} {crops.shape}")
    fed = display_crops(crops, prep.colour_order)  # its own inverse: back to the colour order the network was fed
    clips = crops_to_tensor(fed[None], prep).to(loaded.device).requires_grad_(True)
    layer = network.backbone.get_submodule(get_backbone(network.config.backbone).cam_layer)
    target = _fake_log_odds(prep.fake_index)
    with _hooks_lock, _gradients(loaded.device, network.lstm is not None), ClipGradCAM(network, [layer]) as cam:
        maps = cam(clips, targets=[target])  # (T', S, S), each stretched to [0, 1] by grad-cam
        recorded = cam.activations_and_grads
        raw = cam.get_cam_image(
            clips, layer, [target], recorded.activations[0].numpy(), recorded.gradients[0].numpy()
        )  # (T', h, w), on one scale
    evidence = np.maximum(raw, 0).sum(axis=(1, 2))
    if not (np.isfinite(maps).all() and np.isfinite(evidence).all()):
        raise ValueError("the network's gradients are not finite")
    best = int(np.argmax(evidence))
    chosen = maps[best]
    peak = float(chosen.max())
    # grad-cam divides by (max + 1e-7), which leaves weak maps near 0 everywhere: stretch the peak to 1
    chosen = np.clip(chosen / peak if peak > 0 else chosen, 0.0, 1.0).astype(np.float32)
    frame = len(crops) - len(maps) + best  # legacy_last_frame: only the last frame reached the backbone
    overlay = show_cam_on_image(
        crops[frame].astype(np.float32) / 255.0, chosen, use_rgb=True, image_weight=OVERLAY_IMAGE_WEIGHT
    )
    return Heatmap(frame=frame, map=chosen, overlay=overlay)


def _evidence_model(result: AnalysisResult, loaded: Sequence[LoadedModel]) -> LoadedModel:
    """The checkpoint whose windows the result shows: an ensemble's evidence member, else the one checkpoint."""
    digest = str(result.checkpoint.get("sha256"))
    return next((one for one in loaded if str(one.checkpoint.sha256) == digest), loaded[0])


def describe(loaded: LoadedModel, mode: HeatmapMode) -> dict[str, Any]:
    """How the maps of a result are made: what ``result.heatmaps`` records before the maps are listed."""
    from .network import get_backbone

    architecture = loaded.checkpoint.architecture
    layer = get_backbone(architecture.backbone).cam_layer
    return {
        "mode": mode,
        "method": METHOD,
        "target": TARGET,
        "layer": f"{architecture.backbone} backbone.{layer}" if layer else f"{architecture.backbone} backbone",
        "note": None,
    }


def add_heatmaps(result: AnalysisResult, loaded: Sequence[LoadedModel], mode: HeatmapMode) -> None:
    """After the verdict: a heat map on every track ``mode`` selects (``TrackScore.heatmap``), made by the
    checkpoint whose windows the result shows. Records how in ``result.heatmaps`` (with a note when no map could be
    made: an ONNX export, crops not kept) and the time in ``result.timings["heatmaps"]``. A map that fails is noted
    and logged; the verdict stands without it."""
    if not loaded:
        return
    model = _evidence_model(result, loaded)
    result.heatmaps = describe(model, mode)
    selected = select_tracks(result, mode)
    if not selected:
        return
    started = time.perf_counter()
    notes = _make_maps(model, selected)
    result.heatmaps["note"] = " ".join(notes) or None
    seconds = time.perf_counter() - started
    result.timings["heatmaps"] = seconds
    if "total" in result.timings:
        result.timings["total"] += seconds


def _make_maps(model: LoadedModel, selected: list[tuple[WindowResult, TrackScore]]) -> list[str]:
    """Put a heat map on each selected track; what could not be made, in words."""
    from .network import DeepfakeDetector

    if not isinstance(model.model, DeepfakeDetector):
        return [onnx_note(model.checkpoint)]
    notes: list[str] = []
    without_crops = [window.index for window, track in selected if track.crops is None]
    if without_crops:
        notes.append(f"No heat map for windows {', '.join(map(str, without_crops))}: their face crops were not kept.")
    for window, track in selected:
        if track.crops is None:
            continue
        try:
            track.heatmap = compute_heatmap(model, track.crops)
        except (RuntimeError, ValueError) as exc:  # torch reports its failures (out of memory, ...) as RuntimeError
            log.exception("Heat map of window %s, face %s failed", window.index, track.track_id)
            notes.append(f"No heat map for window {window.index}, face {track.track_id}: {exc}.")
    return notes


def figures(result: dict[str, Any], base: str) -> list[dict[str, Any]]:
    """The heat maps of a stored result (``to_dict`` after ``save_crops``), for a page or a report: per map its
    window, face, person (from 1), frame (and its time) and fake probability, and its files' names prefixed by
    ``base`` (a URL or a folder): the map over the crop (``overlay``) and the crop alone (``crop``). Maps without
    their files are left out."""
    files = (result.get("crop_files") or {}).get("windows", {})
    windows = {window["index"]: window for window in result.get("windows", [])}
    fps = (result.get("video") or {}).get("fps")
    found = []
    for entry in (result.get("heatmaps") or {}).get("maps", []):
        window = windows.get(entry["window"])
        names = files.get(str(entry["window"]), {}).get(str(entry["track_id"]), {})
        if window is None or "heatmap" not in names or "heatmap_crop" not in names:
            continue
        track = next((t for t in window["tracks"] if t["track_id"] == entry["track_id"]), None)
        if track is None:
            continue
        found.append(
            {
                "window": entry["window"],
                "face": entry["track_id"],
                "person": person_number(track["person_id"]),  # as the page and the PDF name people: from 1
                "frame": entry["frame"],  # 0-based, within the window
                "frames": len(track["boxes"]),
                "video_frame": entry["video_frame"],
                "time": entry["video_frame"] / fps if fps else window["start_time"],  # seconds into the video
                "fake_probability": track["fake_probability"],
                "overlay": base + names["heatmap"],
                "crop": base + names["heatmap_crop"],
            }
        )
    return found
