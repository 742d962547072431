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

Which windows: those of FAKE and INCONCLUSIVE people (``flagged``, the default; each such person's
``DETECTION_HEATMAP_WINDOWS`` most suspicious windows, 2 by default: the windows that carry their verdict), every
scored window (``all``) or none (``off``). ONNX exports have no gradients: their results say that heat maps need the
``.pt`` checkpoint. ``result.heatmaps["state"]`` says where the maps are: off, pending, done or failed.

How they are drawn cheaply (one pass per window, the Grad-CAM object built once per network, the gradient taken only
back to the layer) is ``gradcam.py``'s part. torch and grad-cam are imported only when a map is made (grad-cam's
import alone takes seconds; the worker pays it once when its process starts): the settings read this module's modes
at every start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ConfigurationError
from .naming import person_number
from .results import AnalysisResult, Heatmap, TrackScore, WindowResult
from .stages import Progress, Stage

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

DEFAULT_WINDOWS_PER_PERSON = 2  # flagged: each flagged person's most suspicious windows get a map


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


def select_tracks(
    result: AnalysisResult, mode: HeatmapMode, per_person: int = 0
) -> list[tuple[WindowResult, TrackScore]]:
    """The scored tracks that get a heat map, in window order: every one (``all``), those of FAKE and INCONCLUSIVE
    people (``flagged``; with ``per_person`` > 0 only each such person's ``per_person`` most suspicious windows, the
    ones that carry their verdict), or none (``off``)."""
    if mode == "off":
        return []
    scored = [(window, track) for window in result.windows if window.status == "scored" for track in window.tracks]
    if mode == "all":
        return scored
    flagged = {person.person_id for person in result.people if person.verdict in FLAGGED_VERDICTS}
    chosen: list[tuple[WindowResult, TrackScore]] = []
    for person in sorted(flagged):
        theirs = [pair for pair in scored if pair[1].person_id == person]
        theirs.sort(key=lambda pair: -pair[1].fake_probability)  # stable: the earlier window wins a tie
        chosen += theirs[:per_person] if per_person > 0 else theirs
    keep = {id(track) for _, track in chosen}
    return [pair for pair in scored if id(pair[1]) in keep]


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
    return compute_heatmaps(loaded, [crops])[0]


def compute_heatmaps(loaded: LoadedModel, sequences: Sequence[np.ndarray]) -> list[Heatmap]:
    """:func:`compute_heatmap` of several face sequences of one length (one window's tracks): one forward and one
    backward pass for all of them (``gradcam.ClipMaps``)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image  # type: ignore[import-untyped]

    from .gradcam import engine
    from .network import DeepfakeDetector, get_backbone
    from .prediction import display_crops
    from .preprocessing import crops_to_tensor

    network, checkpoint = loaded.model, loaded.checkpoint
    if not isinstance(network, DeepfakeDetector):
        raise ConfigurationError(onnx_note(checkpoint))
    prep = checkpoint.preprocessing
    size = prep.image_size
    for crops in sequences:
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3) or not len(crops) or crops.dtype != np.uint8:
            raise ValueError(f"expected (N, {size}, {size}, 3) uint8 crops, got {crops.dtype} {crops.shape}")
    if len({len(crops) for crops in sequences}) > 1:
        raise ValueError("the sequences of one pass must have one length")
    stacked = np.stack([display_crops(crops, prep.colour_order) for crops in sequences])  # as the network was fed
    clips = crops_to_tensor(stacked, prep).to(loaded.device)
    layer = network.backbone.get_submodule(get_backbone(network.config.backbone).cam_layer)
    with _gradients(loaded.device, network.lstm is not None):
        found = engine(network, layer).maps(clips, _fake_log_odds(prep.fake_index))
    heatmaps = []
    for crops, clip in zip(sequences, found, strict=True):
        seen = clips.size(1) if network.config.head != "legacy_last_frame" else 1
        frame = len(crops) - seen + clip.frame  # legacy_last_frame: only the last frame reached the backbone
        overlay = show_cam_on_image(
            crops[frame].astype(np.float32) / 255.0, clip.map, use_rgb=True, image_weight=OVERLAY_IMAGE_WEIGHT
        )
        heatmaps.append(Heatmap(frame=frame, map=clip.map, overlay=overlay))
    return heatmaps


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


def plan_heatmaps(
    result: AnalysisResult, loaded: Sequence[LoadedModel], mode: HeatmapMode, per_person: int
) -> list[tuple[WindowResult, TrackScore]]:
    """Record in ``result.heatmaps`` how its maps are made and their state, and return the tracks to map. The state
    is ``off`` (not asked, or an ONNX export, with a note), ``done`` (nothing to draw) or ``pending``; drawing makes
    ``pending`` ``done``, or ``failed`` when no selected map could be drawn."""
    from .network import DeepfakeDetector

    model = _evidence_model(result, loaded)
    result.heatmaps = describe(model, mode)
    result.heatmaps["windows_per_person"] = per_person if mode == "flagged" else None
    selected = select_tracks(result, mode, per_person)
    if mode == "off":
        result.heatmaps["state"] = "off"
    elif selected and not isinstance(model.model, DeepfakeDetector):
        result.heatmaps |= {"state": "off", "note": onnx_note(model.checkpoint)}
        return []
    else:
        result.heatmaps["state"] = "pending" if selected else "done"
    return selected


def add_heatmaps(
    result: AnalysisResult,
    loaded: Sequence[LoadedModel],
    mode: HeatmapMode,
    per_person: int = DEFAULT_WINDOWS_PER_PERSON,
    progress: Progress | None = None,
) -> None:
    """After the verdict: a heat map on every track ``mode`` selects (``TrackScore.heatmap``, see
    :func:`select_tracks`), made by the checkpoint whose windows the result shows. Records how in
    ``result.heatmaps`` (:func:`plan_heatmaps`; a note when a map could not be made: crops not kept, a failure) and
    the time in ``result.timings["heatmaps"]``; ``progress`` hears ``Stage.HEATMAPS`` and the fraction drawn. A map
    that fails is noted and logged; the verdict stands without it."""
    if not loaded:
        return
    selected = plan_heatmaps(result, loaded, mode, per_person)
    if not selected:
        return
    started = time.perf_counter()
    notes = _make_maps(_evidence_model(result, loaded), selected, progress)
    result.heatmaps["note"] = " ".join(notes) or None
    drawn = sum(track.heatmap is not None for _, track in selected)
    result.heatmaps["state"] = "done" if drawn or all(track.crops is None for _, track in selected) else "failed"
    seconds = time.perf_counter() - started
    result.timings["heatmaps"] = seconds
    if "total" in result.timings:
        result.timings["total"] += seconds


def _batches(selected: list[tuple[WindowResult, TrackScore]]) -> list[list[tuple[WindowResult, TrackScore]]]:
    """The selected tracks (with crops) in passes: one window's tracks of one length, a few at a time."""
    from .gradcam import CLIPS_PER_PASS

    groups: dict[tuple[int, int], list[tuple[WindowResult, TrackScore]]] = {}
    for window, track in selected:
        if track.crops is not None:
            groups.setdefault((window.index, len(track.crops)), []).append((window, track))
    return [group[i : i + CLIPS_PER_PASS] for group in groups.values() for i in range(0, len(group), CLIPS_PER_PASS)]


def _make_maps(
    model: LoadedModel, selected: list[tuple[WindowResult, TrackScore]], progress: Progress | None = None
) -> list[str]:
    """Put a heat map on each selected track; what could not be made, in words."""
    from .network import DeepfakeDetector

    if not isinstance(model.model, DeepfakeDetector):
        return [onnx_note(model.checkpoint)]
    notes: list[str] = []
    without_crops = [window.index for window, track in selected if track.crops is None]
    if without_crops:
        notes.append(f"No heat map for windows {', '.join(map(str, without_crops))}: their face crops were not kept.")
    batches = _batches(selected)
    for done, batch in enumerate(batches):
        if progress is not None:
            progress(Stage.HEATMAPS, done / len(batches))
        try:
            maps = compute_heatmaps(model, [track.crops for _, track in batch if track.crops is not None])
        except (RuntimeError, ValueError) as exc:  # torch reports its failures (out of memory, ...) as RuntimeError
            log.exception("Heat maps of window %s failed", batch[0][0].index)
            faces = ", ".join(str(track.track_id) for _, track in batch)
            notes.append(f"No heat map for window {batch[0][0].index}, face {faces}: {exc}.")
            continue
        for (_, track), heatmap in zip(batch, maps, strict=True):
            track.heatmap = heatmap
    if progress is not None:
        progress(Stage.HEATMAPS, 1.0)
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
