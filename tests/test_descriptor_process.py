"""Face descriptors from the helper process: the same numbers as in the analysing process, the same people, no
PyTorch in the helper, and an analysis that survives the helper's death."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from ml_app.detection import descriptor_process
from ml_app.detection.faces import build_detector
from ml_app.detection.faces.dlib_models import face_descriptor
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.prediction import analyze_video
from ml_app.detection.preprocessing import DetectorSettings

from . import media


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, object]:
    image = media.scene(480, 360, ((140, 60, 200),))
    found = build_detector(DetectorSettings(backend="centerface")).detect(image)
    assert found, "the generated scene has a face CenterFace finds"
    return image, found[0].box


def test_the_helper_gives_the_descriptor_to_the_last_bit(face):
    image, box = face
    helper = descriptor_process.helper()
    assert helper is not None
    answer = helper.submit(image, box).result(timeout=60)
    expected = face_descriptor(image, box)
    assert answer.dtype == expected.dtype and answer.shape == (128,)
    assert np.array_equal(answer, expected)


def test_the_helper_does_not_load_pytorch(face):
    image, box = face
    helper = descriptor_process.helper()
    assert helper is not None
    helper.submit(image, box).result(timeout=60)  # it has started and loaded dlib's models
    libraries = Path(f"/proc/{helper.process.pid}/maps").read_text()
    assert "libdlib" in libraries or "_dlib_pybind11" in libraries
    assert "libtorch" not in libraries


def _people(result) -> list[tuple[int, int, int]]:
    return [(window.index, track.track_id, track.person_id) for window in result.windows for track in window.tracks]


def test_people_are_linked_alike_with_and_without_the_helper(two_face_video, tiny_checkpoint):
    loaded = load_detector_model(tiny_checkpoint, "cpu")
    inline = analyze_video(two_face_video, loaded, max_windows=3, keep_crops=False, describe_in_process=False)
    helped = analyze_video(two_face_video, loaded, max_windows=3, keep_crops=False)
    assert len(inline.people) == 2 and len({person for *_, person in _people(inline)}) == 2
    assert _people(helped) == _people(inline)


def _analysed_after_killing_the_helper(video, checkpoint) -> tuple[object, object, object]:
    """The analysis without the helper, then with a helper killed first; and the helper that was killed."""
    loaded = load_detector_model(checkpoint, "cpu")
    reference = analyze_video(video, loaded, max_windows=3, keep_crops=False, describe_in_process=False)
    first = descriptor_process.helper()
    assert first is not None
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=10)
    return reference, analyze_video(video, loaded, max_windows=3, keep_crops=False), first


def test_a_killed_helper_leaves_the_analysis_whole_and_is_replaced(two_face_video, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(descriptor_process, "_failures", [0])  # the count this test leaves is its own
    reference, result, first = _analysed_after_killing_the_helper(two_face_video, tiny_checkpoint)
    assert _people(result) == _people(reference)
    second = descriptor_process.helper()
    assert second is not None and second is not first and second.process.pid != first.process.pid
    assert second.process.poll() is None


def test_without_a_helper_the_faces_are_described_here(two_face_video, tiny_checkpoint, monkeypatch, caplog):
    loaded = load_detector_model(tiny_checkpoint, "cpu")
    reference = analyze_video(two_face_video, loaded, max_windows=3, keep_crops=False, describe_in_process=False)
    descriptor_process._stop()  # the running helper ends; the next one cannot start
    monkeypatch.setattr(descriptor_process, "_failures", [0])  # the count this test leaves is its own
    monkeypatch.setattr(descriptor_process.sys, "executable", "/nonexistent/python")
    result = analyze_video(two_face_video, loaded, max_windows=3, keep_crops=False)
    assert _people(result) == _people(reference)
    assert "no helper process" in caplog.text


def test_after_repeated_failures_the_faces_are_described_here_for_good(two_face_video, tiny_checkpoint, monkeypatch):
    monkeypatch.setattr(descriptor_process, "MAX_FAILURES", 1)
    monkeypatch.setattr(descriptor_process, "_failures", [0])
    reference, result, _ = _analysed_after_killing_the_helper(two_face_video, tiny_checkpoint)
    assert _people(result) == _people(reference)
    assert descriptor_process.helper() is None  # no new helper is started in this process any more
