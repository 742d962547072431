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
    return FaceRecognitionDetector(DetectorSettings())


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
    full = FaceRecognitionDetector(DetectorSettings(max_side=None, upsample=0)).detect(big)
    small = FaceRecognitionDetector(DetectorSettings(max_side=480, upsample=1)).detect(big)
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
