"""Issue 15 (6): evaluate_model's errors.html lists the most confident mistakes, worst first, with the faces scored."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from django.core.management import call_command

from ml_app.detection.checkpoints import build_model, load_checkpoint, save_checkpoint
from ml_app.detection.model_loading import load_detector_model
from ml_app.detection.preprocessing import crops_to_tensor
from model_creation.training.dataset import ClipDataset, scoring_length
from model_creation.training.evaluate import level_scores, score_dataset, usable_items
from model_creation.training.extract import load_clip
from model_creation.training.manifest import load_manifest

from .conftest import small_checkpoint, small_frame_checkpoint
from .training_data import synthetic_manifest

HOSTILE = 'real/<script>alert("x")</script> & co.mp4'


def varied_checkpoint(path: Path, manifest_path: Path, frame: bool = False) -> Path:
    """A tiny random network whose batch-norm statistics come from the manifest's crops, so its scores spread
    (a freshly initialised one gives every clip nearly the same score). Seeded: the same network whatever ran before."""
    torch.manual_seed(0)
    (small_frame_checkpoint if frame else small_checkpoint)(path)
    checkpoint = load_checkpoint(path)
    manifest = load_manifest(manifest_path)
    model = build_model(checkpoint)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batches below
    model.train()
    crops = [load_clip(manifest.clip_path(clip)) for video in manifest.videos for clip in video.clips]
    with torch.no_grad():
        for start in range(0, len(crops), 4):
            batch = np.stack([clip[: checkpoint.sequence_length] for clip in crops[start : start + 4]])
            model(crops_to_tensor(batch, checkpoint.preprocessing))
    checkpoint.state_dict = {key: value.detach().clone() for key, value in model.state_dict().items()}
    save_checkpoint(checkpoint, path)
    return path


def clip_scores(checkpoint: Path, manifest_path: Path) -> tuple[list, np.ndarray]:
    loaded = load_detector_model(checkpoint, "cpu")
    manifest = load_manifest(manifest_path)
    items = usable_items(manifest.videos)
    length = scoring_length(loaded.checkpoint.architecture.is_frame_model, loaded.checkpoint.sequence_length, manifest)
    dataset = ClipDataset(manifest, items, length, preprocessing=loaded.checkpoint.preprocessing)
    return items, score_dataset(loaded.model, dataset, loaded.device, progress=False)


def expected_mistakes(rows: list[tuple[str, int, float]], threshold: float) -> dict[str, list[str]]:
    real = sorted((r for r in rows if r[1] == 0 and r[2] >= threshold), key=lambda r: (-r[2], r[0]))
    fake = sorted((r for r in rows if r[1] == 1 and r[2] < threshold), key=lambda r: (r[2], r[0]))
    return {"real_called_fake": [r[0] for r in real], "fake_called_real": [r[0] for r in fake]}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """A manifest with a hostile file name on the worst REAL mistake, a checkpoint, its clip scores, a threshold."""
    root = tmp_path_factory.mktemp("errors")
    probe = small_checkpoint(root / "probe.pt")
    manifest_path = synthetic_manifest(
        root / "clips", videos_per_label=5, length=8, preprocessing=load_checkpoint(probe).preprocessing
    )
    checkpoint = varied_checkpoint(root / "model.pt", manifest_path)
    items, scores = clip_scores(checkpoint, manifest_path)
    assert np.ptp(scores) > 1e-4, "the crafted network's scores must spread"
    threshold = float(np.median(scores))
    videos = level_scores(items, scores, "video")
    worst_real = expected_mistakes(videos, threshold)["real_called_fake"][0]
    data = json.loads(manifest_path.read_text())
    for video in data["videos"]:
        if video["video_id"] == worst_real:
            video["video"], video["source_path"] = HOSTILE, "/data/<img src=x onerror=alert(1)>.mp4"
    manifest_path.write_text(json.dumps(data))
    return manifest_path, checkpoint, items, scores, threshold


def evaluate(checkpoint: Path, manifest: Path, output: Path, *extra) -> tuple[str, dict]:
    out = StringIO()
    args = [str(checkpoint), "--manifest", str(manifest), "--output", str(output), "--no-progress", *map(str, extra)]
    call_command("evaluate_model", *args, stdout=out)
    return out.getvalue(), json.loads((output / "report.json").read_text())


def test_errors_page_lists_the_most_confident_mistakes_in_order(crafted, tmp_path):
    manifest, checkpoint, items, scores, threshold = crafted
    log, report = evaluate(checkpoint, manifest, tmp_path / "eval", "--threshold", threshold)
    page_path = tmp_path / "eval" / "errors.html"
    assert f"Most confident mistakes: {page_path}" in log
    errors = report["errors"]
    assert errors["page"] == "errors.html" and errors["threshold"] == pytest.approx(threshold)
    for level in ("video", "clip"):
        expected = expected_mistakes(level_scores(items, scores, level), threshold)
        for kind, keys in expected.items():
            listed = errors[level][kind]
            assert [row["key"] for row in listed["listed"]] == keys[:20], (level, kind)
            assert listed["mistakes"] == len(keys)
    assert errors["video"]["real_called_fake"]["mistakes"] and errors["clip"]["fake_called_real"]["mistakes"]
    worst = errors["video"]["real_called_fake"]["listed"][0]
    assert worst["video"] == HOSTILE and worst["label"] == "REAL" and worst["score"] >= threshold

    page = page_path.read_text()
    assert "<script" not in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co.mp4" in page
    # the video sections list their rows in the report's order
    for section, level, kind in ((1, "video", "real_called_fake"), (2, "video", "fake_called_real")):
        text = page.split("<h2>")[section]
        positions = [text.index(f"id {row['key']}<") for row in errors[level][kind]["listed"]]
        assert positions == sorted(positions)
    # only images beside the page, linked relatively, that exist; nothing from elsewhere
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and not re.search(r"https?:|//", page.replace("<!DOCTYPE html>", ""))
    for link in links:
        assert not link.startswith(("/", "data:")) and ".." not in link
        assert (tmp_path / "eval" / link).is_file(), link


def test_the_strips_are_the_crops_the_network_saw_in_rgb(crafted, tmp_path):
    manifest_path, checkpoint, _, _, threshold = crafted
    _, report = evaluate(checkpoint, manifest_path, tmp_path / "e", "--threshold", threshold, "--errors-top", 2)
    manifest = load_manifest(manifest_path)
    clips = {f"{v.video_id}/{c.window}/{c.track}": c for v in manifest.videos for c in v.clips}
    errors = report["errors"]
    assert all(len(errors[level][kind]["listed"]) <= 2 for level in ("video", "clip") for kind in errors[level])
    page = (tmp_path / "e" / "errors.html").read_text()
    clip_section = page[page.index("<h2>Clips") :]
    first = errors["clip"]["fake_called_real"]["listed"][0]
    crops = load_clip(manifest.clip_path(clips[first["key"]]))
    shown = [link for link in re.findall(r'src="([^"]*)"', clip_section)]
    strips = [cv2.cvtColor(cv2.imread(str(tmp_path / "e" / link)), cv2.COLOR_BGR2RGB) for link in shown]
    expected = np.concatenate(list(crops), axis=1).astype(np.float32)  # 8 frames = the sequence length
    assert any(s.shape == expected.shape and np.abs(s - expected).mean() < 6 for s in strips)
    # run again: the page and its images are replaced, not added to
    evaluate(checkpoint, manifest_path, tmp_path / "e", "--threshold", threshold, "--errors-top", 1)
    images = list((tmp_path / "e" / "errors_files").iterdir())
    assert len(images) == len(set(re.findall(r'src="([^"]*)"', (tmp_path / "e" / "errors.html").read_text())))


def test_no_mistake_is_said_so(crafted, tmp_path):
    manifest, checkpoint, _, scores, _ = crafted
    # above every score nothing is called FAKE: no REAL mistake; every FAKE is a mistake
    _, report = evaluate(checkpoint, manifest, tmp_path / "e", "--threshold", float(scores.max()) + 0.01)
    assert report["errors"]["video"]["real_called_fake"] == {"mistakes": 0, "listed": []}
    assert report["errors"]["video"]["fake_called_real"]["mistakes"] == 5
    assert "None." in (tmp_path / "e" / "errors.html").read_text()
