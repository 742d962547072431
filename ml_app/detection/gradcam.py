"""The Grad-CAM engine behind ``heatmaps.py``: the grad-cam package's GradCAM, built once per loaded network and
driven one backward pass per batch of clips.

Why it costs little:

* **Built once per network.** The GradCAM object and its hooks on the backbone's ``cam_layer`` are made the first
  time a network draws a map and kept beside it (a weak reference: they go when the network goes). The hooks record
  only while gradients are on, so scoring (``no_grad``) with the same network neither pays for them nor keeps its
  activations.
* **One backward pass per batch of clips** (the tracks of one window, of one length, a few at a time): the backbone
  runs all their frames as one batch and one summed target gives each clip its own gradient (clips never mix: the
  network is in eval mode).
* **Only as far back as the layer.** The layers before it run without gradients (no graph is recorded there) and
  the gradient is taken with respect to the layer's output (``autograd.grad``), not pushed through the whole
  backbone to the input and into every weight: the part of the backward pass that Grad-CAM needs, a small fraction
  of the full one.
* **Imported once per process**: :func:`preload` (the worker calls it when its process starts) pays grad-cam's
  import (matplotlib, scipy: seconds) before the first analysis rather than during it.

The method itself (one set of channel weights per clip, the frame with the most positive evidence, the stretch to 1)
is described in ``heatmaps.py``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

CLIPS_PER_PASS = 4  # clips that share one backward pass: enough to amortise it, few enough to bound its memory

_engines: weakref.WeakKeyDictionary[Any, ClipMaps] = weakref.WeakKeyDictionary()
_engines_lock = threading.Lock()
_draw_lock = threading.Lock()  # the hooks belong to the network, which a process shares between its analyses


def preload() -> None:
    """Import torch and grad-cam now (seconds, once per process), so that the first heat map does not pay it."""
    import pytorch_grad_cam  # type: ignore[import-untyped]
    import pytorch_grad_cam.utils.image  # type: ignore[import-untyped]  # noqa: F401


@dataclass
class ClipMap:
    """One clip's map: the frame chosen (index into the frames the backbone saw) and its map at the crop's size,
    in [0, 1] with its peak at 1 (all zeros without positive evidence)."""

    frame: int
    map: np.ndarray


def engine(network: torch.nn.Module, layer: torch.nn.Module) -> ClipMaps:
    """The network's Grad-CAM engine, built on first use and reused after."""
    with _engines_lock:
        found = _engines.get(network)
        if found is None or found.layer is not layer:
            found = ClipMaps(network, layer)
            _engines[network] = found
        return found


class ClipMaps:
    """grad-cam's GradCAM on one layer of one network, for ``(B, T, 3, H, W)`` clips."""

    def __init__(self, network: torch.nn.Module, layer: torch.nn.Module, cut: bool = True):
        self.layer = layer
        self.cut = cut  # the layers before ``layer`` run without gradients (False: with, as grad-cam would)
        self._cam = _clip_grad_cam_class()(network, [layer])

    def maps(self, clips: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor]) -> list[ClipMap]:
        """Each clip's map, from one forward and one (partial) backward pass; ``target`` turns one clip's output row
        into the score to explain. A ValueError when the gradients are not finite."""
        import torch
        from pytorch_grad_cam.utils.image import scale_cam_image

        cam = self._cam
        recorder = cam.activations_and_grads
        size = (clips.size(-1), clips.size(-2))
        with _draw_lock:
            try:
                recorder.cut_in = threading.get_ident() if self.cut else None
                with torch.no_grad() if self.cut else nullcontext():
                    outputs = recorder(clips)  # the hook keeps the layer's output, in the graph from there on
                recorder.cut_in = None
                activations = recorder.activations[0]
                loss = torch.stack([target(row) for row in outputs]).sum()
                (grads,) = torch.autograd.grad(loss, activations)
                raw = cam.get_cam_image(
                    clips, self.layer, None, activations.detach().cpu().numpy(), grads.detach().cpu().numpy()
                )  # (B * T', h, w), one scale within a clip
            finally:
                recorder.cut_in = None
                recorder.clear()
        per_clip = raw.reshape(clips.size(0), -1, *raw.shape[1:])
        found = []
        for frames in per_clip:
            evidence = np.maximum(frames, 0).sum(axis=(1, 2))
            if not (np.isfinite(frames).all() and np.isfinite(evidence).all()):
                raise ValueError("the network's gradients are not finite")
            best = int(np.argmax(evidence))
            # as grad-cam's own call does: ReLU, shift and stretch, resize; then again over the resized map
            chosen = scale_cam_image(scale_cam_image(np.maximum(frames[best : best + 1], 0), size))[0]
            peak = float(chosen.max())
            # grad-cam divides by (max + 1e-7), which leaves weak maps near 0 everywhere: stretch the peak to 1
            chosen = np.clip(chosen / peak if peak > 0 else chosen, 0.0, 1.0).astype(np.float32)
            found.append(ClipMap(frame=best, map=chosen))
        return found


_class_cache: list[type] = []


def _clip_grad_cam_class() -> type:
    """GradCAM for clips (made once: it needs grad-cam imported). grad-cam would read a 5-d input as a 3-d volume;
    here each of a clip's T frames gets a map at the frames' height and width, with one set of channel weights for
    the whole clip (the gradient averaged over its frames as well as over space)."""
    if _class_cache:
        return _class_cache[0]
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients  # type: ignore[import-untyped]

    class WhileGradientsOn(ActivationsAndGradients):
        """Records the layer's output only while a map is drawn (gradients on, or ``cut_in`` this thread): never
        while scoring. With ``cut_in``, the layers before ran without gradients: the output becomes the leaf the
        gradient is taken at, and gradients are switched on for the rest of the forward pass (the caller's
        ``no_grad`` switches them back)."""

        cut_in: int | None = None

        def save_activation(self, module: Any, input: Any, output: torch.Tensor) -> torch.Tensor | None:
            if self.cut_in is not None and self.cut_in == threading.get_ident():
                torch.set_grad_enabled(True)
                leaf = output.detach().requires_grad_(True)
                self.activations.append(leaf)
                return leaf.clone()  # later in-place operations change the clone, never the leaf
            if torch.is_grad_enabled():
                self.activations.append(output)
            return None

        def save_gradient(self, module: Any, input: Any, output: torch.Tensor) -> None:
            """Unused: the gradient comes from ``autograd.grad`` at the layer."""

    class ClipGradCAM(GradCAM):
        def __init__(self, model: torch.nn.Module, target_layers: Sequence[torch.nn.Module]):
            super().__init__(model, list(target_layers))
            self.activations_and_grads.release()
            self.activations_and_grads: Any = WhileGradientsOn(model, list(target_layers), None, detach=False)

        def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads) -> np.ndarray:
            per_frame = super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)  # (B*T, C)
            clips = per_frame.reshape(input_tensor.size(0), -1, per_frame.shape[-1])
            shared = np.broadcast_to(clips.mean(axis=1, keepdims=True), clips.shape)
            return shared.reshape(per_frame.shape)

    _class_cache.append(ClipGradCAM)
    return ClipGradCAM
