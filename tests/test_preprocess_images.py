"""Issue 14: photos into single-frame clips and a manifest (preprocess_images): layouts, detected and aligned faces,
bad files listed not fatal, decompression bombs refused, EXIF orientation, resuming, sharding, merging."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from django.core.management import CommandError, call_command
from PIL import Image

from ml_app.detection.faces import build_detector
from ml_app.detection.images import read_image
from ml_app.detection.preprocessing import Preprocessing, crop_face
from model_creation.training.extract_images import ImageExtractor, ImageSettings, whole_image_crop
from model_creation.training.layouts import LayoutError, read_image_layout
from model_creation.training.manifest import ManifestError, load_manifest, merge_manifests

from .training_data import synthetic_manifest

SIZE = ["--image-size", "64", "--no-progress"]
ORIENTATION = 0x0112


def run(*args) -> str:
    out = StringIO()
    call_command("preprocess_images", *map(str, args), stdout=out)
    return out.getvalue()


def save(path: Path, rgb: np.ndarray, orientation: int | None = None) -> Path:
    """An RGB array as a photo (format from the suffix), optionally with an EXIF orientation tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    if orientation is None:
        image.save(path)
    else:
        exif = Image.Exif()
        exif[ORIENTATION] = orientation
        image.save(path, exif=exif)
    return path


def tile(colour: tuple[int, int, int], width: int = 48, height: int = 48) -> np.ndarray:
    """A tiny synthetic 'aligned face': a flat colour with a darker square, enough for aligned mode."""
    image = np.full((height, width, 3), colour, dtype=np.uint8)
    image[height // 4 : height // 2, width // 4 : width // 2] //= 2
    return image


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def by_path(entries) -> dict:
    return {entry.relpath: entry for entry in entries}


# --- layouts --------------------------------------------------------------------------------------------------------


def test_folder_layout_finds_photos_with_and_without_split_folders(tmp_path):
    touch(tmp_path, "real/1.jpg", "fake/1.PNG", "fake/gan/x.webp", "real/clip.mp4", "real/notes.txt", "other/y.jpg")
    entries = by_path(read_image_layout("folder", tmp_path))
    assert set(entries) == {"real/1.jpg", "fake/1.PNG", "fake/gan/x.webp"}, "photos only, under real/ or fake/"
    assert entries["real/1.jpg"].label == "REAL" and entries["fake/1.PNG"].label == "FAKE"
    assert entries["fake/gan/x.webp"].method == "gan" and entries["real/1.jpg"].split == ""
    assert entries["real/1.jpg"].group != entries["fake/1.PNG"].group, "each photo is its own group"
    grouped = by_path(read_image_layout("folder", tmp_path, group_regex=r"(\w+)\."))
    assert grouped["real/1.jpg"].group == grouped["fake/1.PNG"].group == "folder:1"

    split_root = tmp_path / "splits"
    touch(split_root, "train/real/a.jpg", "valid/fake/b.jpg", "validation/real/c.png", "test/fake/d.webp")
    splits = {e.relpath: e.split for e in read_image_layout("folder", split_root)}
    assert splits == {"train/real/a.jpg": "train", "valid/fake/b.jpg": "val", "validation/real/c.png": "val"} | {
        "test/fake/d.webp": "test"
    }
    with pytest.raises(LayoutError, match="no images under a real/ or fake/"):
        read_image_layout("folder", _empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty" / "real"
    folder.mkdir(parents=True)
    (folder / "clip.mp4").write_bytes(b"")
    return folder.parent


def test_csv_layout_reads_photos_with_a_header_and_numeric_labels(tmp_path):
    (tmp_path / "labels.csv").write_text("image,label,split\na.jpg,1,train\nb.png,0,valid\nc.webp,FAKE,\n")
    entries = by_path(read_image_layout("csv", tmp_path / "labels.csv", dataset="mine"))
    assert [entries[n].label for n in ("a.jpg", "b.png", "c.webp")] == ["FAKE", "REAL", "FAKE"], "1 means FAKE"
    assert entries["a.jpg"].split == "train" and entries["b.png"].split == "val" and entries["c.webp"].split == ""
    assert entries["a.jpg"].path == (tmp_path / "a.jpg").resolve() and entries["a.jpg"].group == "mine:a.jpg"
    flipped = by_path(read_image_layout("csv", tmp_path / "labels.csv", one_means="REAL"))
    assert flipped["a.jpg"].label == "REAL" and flipped["b.png"].label == "FAKE"
    (tmp_path / "plain.csv").write_text("x.jpg,real\n")
    photos = tmp_path / "photos"
    (plain,) = read_image_layout("csv", tmp_path / "plain.csv", images_dir=photos)
    assert plain.path == (photos / "x.jpg").resolve() and plain.label == "REAL"


def _write_140k_csv(path: Path, rows: list[tuple[str, str, str]]) -> None:
    """The dataset's own columns: an unnamed index, original_path, id, label, label_str, path."""
    lines = [",original_path,id,label,label_str,path"]
    for index, (label, label_str, relpath) in enumerate(rows):
        lines.append(f"{index},/kaggle/ffhq/{Path(relpath).name},{Path(relpath).stem},{label},{label_str},{relpath}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("images_folder", ["real_vs_fake/real-vs-fake", "real-vs-fake", "."])
def test_140k_csvs_give_splits_and_read_its_label_convention(tmp_path, images_folder):
    images = tmp_path / images_folder
    touch(images, "train/real/00001.jpg", "train/fake/AB12.jpg", "valid/real/00002.jpg", "test/fake/CD34.jpg")
    # In the 140k dataset label 1 = real and 0 = fake; label_str, when present, is what counts.
    _write_140k_csv(
        tmp_path / "train.csv", [("1", "real", "train/real/00001.jpg"), ("0", "fake", "train/fake/AB12.jpg")]
    )
    _write_140k_csv(tmp_path / "valid.csv", [("1", "", "valid/real/00002.jpg")])
    _write_140k_csv(tmp_path / "test.csv", [("1", "fake", "test/fake/CD34.jpg")])
    entries = by_path(read_image_layout("140k", tmp_path))
    assert {path: (e.label, e.split) for path, e in entries.items()} == {
        "train/real/00001.jpg": ("REAL", "train"),
        "train/fake/AB12.jpg": ("FAKE", "train"),
        "valid/real/00002.jpg": ("REAL", "val"),  # no label_str: label 1 is real in this dataset
        "test/fake/CD34.jpg": ("FAKE", "test"),  # label_str wins over a contradicting label
    }
    assert entries["train/real/00001.jpg"].path == (images / "train/real/00001.jpg").resolve()
    assert entries["train/real/00001.jpg"].dataset == "140k"


def test_140k_without_csvs_reads_its_folders_and_says_what_is_missing(tmp_path):
    touch(tmp_path / "real_vs_fake" / "real-vs-fake", "train/real/1.jpg", "valid/fake/2.jpg", "test/real/3.jpg")
    entries = {(e.relpath, e.label, e.split) for e in read_image_layout("140k", tmp_path)}
    assert entries == {("train/real/1.jpg", "REAL", "train"), ("valid/fake/2.jpg", "FAKE", "val")} | {
        ("test/real/3.jpg", "REAL", "test")
    }
    assert {e.relpath for e in read_image_layout("140k", tmp_path / "real_vs_fake")} == {e[0] for e in entries}
    (tmp_path / "nothing").mkdir()
    with pytest.raises(LayoutError, match=r"neither train\.csv"):
        read_image_layout("140k", tmp_path / "nothing")
    _write_140k_csv(tmp_path / "train.csv", [("1", "real", "train/real/missing.jpg")])
    with pytest.raises(LayoutError, match="is in none of"):
        read_image_layout("140k", tmp_path)


# --- detected faces -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Real photos with and without a face, a sideways phone photo, and files that must be refused."""
    root = tmp_path_factory.mktemp("photos")
    astronaut, chelsea = skimage.data.astronaut(), skimage.data.chelsea()
    save(root / "train" / "real" / "astronaut.jpg", astronaut)
    save(root / "train" / "real" / "astronaut.png", astronaut)
    save(root / "train" / "fake" / "astronaut.webp", astronaut)
    save(root / "train" / "fake" / "chelsea.jpg", chelsea)
    # Stored sideways, as a phone does: orientation 6 says "turn 90 degrees clockwise to show it".
    upright = np.ascontiguousarray(astronaut[0:400, 60:360])  # 300 wide, 400 high
    save(root / "test" / "real" / "phone.jpg", np.ascontiguousarray(np.rot90(upright)), orientation=6)
    (root / "test" / "fake").mkdir(parents=True)
    (root / "test" / "fake" / "notes.jpg").write_text("not a photo, renamed")
    (root / "test" / "fake" / "empty.png").write_bytes(b"")
    data = (root / "train" / "real" / "astronaut.jpg").read_bytes()
    (root / "test" / "fake" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("1", (20000, 20000)).save(root / "test" / "real" / "bomb.png")  # 400 megapixels, a few kB on disk
    return root


@pytest.fixture(scope="module")
def detected(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("detected") / "out"
    report = run(photos, "--output", out, *SIZE)
    return out, report, load_manifest(out / "manifest.json")


def test_detected_faces_become_one_frame_clips_in_an_image_manifest(detected):
    _, report, manifest = detected
    assert manifest.media == "images" and manifest.sequence_length == 1 and manifest.max_windows == 1
    assert manifest.preprocessing.image_size == 64
    records = {video.video: video for video in manifest.videos}
    for name in ("train/real/astronaut.jpg", "train/real/astronaut.png", "train/fake/astronaut.webp"):
        video = records[name]
        assert video.status == "ok" and len(video.clips) == 1, name
        assert (video.fps, video.frame_count, video.windows, video.width, video.height) == (0.0, 1, 1, 512, 512)
        (clip,) = video.clips
        assert (clip.window, clip.start_frame, clip.track, clip.person, clip.frames, clip.filled) == (0, 0, 0, 0, 1, 0)
    astronaut = records["train/real/astronaut.png"]
    stored = np.load(manifest.clip_path(astronaut.clips[0]))
    assert stored["crops"].shape == (1, 64, 64, 3) and stored["crops"].dtype == np.uint8
    x0, y0, x1, y1 = stored["boxes"][0]
    assert 150 < (x0 + x1) / 2 < 300 and 40 < (y0 + y1) / 2 < 200, "the box is on her face, not the mission patch"
    image, _ = read_image(astronaut.source_path)
    (face,) = build_detector(manifest.preprocessing.detector).detect(image)
    expected = crop_face(image, face.box, manifest.preprocessing)
    assert np.array_equal(stored["crops"][0], expected), "exactly the crop inference makes"
    assert records["train/fake/chelsea.jpg"].status == "no_face" and not records["train/fake/chelsea.jpg"].clips
    assert records["train/real/astronaut.jpg"].split == "train" and records["test/real/phone.jpg"].split == "test"
    assert "train/fake/chelsea.jpg: no_face" in report


def test_bad_photos_are_listed_with_the_reason_and_bombs_refused(detected):
    _, report, manifest = detected
    records = {video.video: video for video in manifest.videos}
    assert len(records) == 9, "every photo has a record, good or bad"
    reasons = {name: records[name].reason for name in records if records[name].status == "broken"}
    assert set(reasons) == {"test/fake/notes.jpg", "test/fake/empty.png", "test/fake/truncated.jpg"} | {
        "test/real/bomb.png"
    }
    assert "not a photo this app can read" in reasons["test/fake/notes.jpg"]
    assert "empty" in reasons["test/fake/empty.png"]
    assert "damaged" in reasons["test/fake/truncated.jpg"]
    assert "too large" in reasons["test/real/bomb.png"] and "50 megapixels" in reasons["test/real/bomb.png"]
    for name in reasons:
        assert f"{name}: broken: " in report, f"the report names {name}"
    assert "Skipped or broken images (5)" in report
    table = report.split("Images by split, class and status:")[1].split("Done:")[0]
    lines = [line.split() for line in table.strip().splitlines()]
    assert lines[0] == ["split", "class", "ok", "broken", "no_face", "total"]
    assert ["train", "FAKE", "1", "0", "1", "2"] in lines and ["test", "FAKE", "0", "3", "0", "3"] in lines
    assert lines[-1] == ["all", "4", "4", "1", "9"]


def test_the_photos_statistics_are_printed_before_preprocessing(detected, tmp_path):
    _, report, _ = detected
    table = report[report.index("Images per split and class, before preprocessing:") : report.index("Done:")]
    rows = [line.split() for line in table.splitlines()[1:]]
    assert rows[0] == ["split", "class", "images", "share", "methods"]
    assert ["train", "REAL", "2", "50%"] in rows and ["train", "FAKE", "2", "50%"] in rows
    assert ["test", "REAL", "2", "40%"] in rows and ["test", "FAKE", "3", "60%"] in rows and ["all", "9"] in rows
    assert "warning" not in table
    assert report.index("before preprocessing") < report.index("Images by split, class and status:")
    touch(tmp_path, *(f"real/{n}.jpg" for n in range(12)), "fake/gan/x.jpg")
    skewed = run(tmp_path, "--output", tmp_path / "out", "--aligned", *SIZE)
    assert ["-", "FAKE", "1", "8%", "gan", "1"] in [line.split() for line in skewed.splitlines()]
    assert "warning: FAKE is 1 of the 13 images of those without a split, under 10%" in skewed


def test_max_pixels_refuses_large_photos_before_decoding(tmp_path):
    save(tmp_path / "real" / "big.png", np.zeros((1000, 2000, 3), np.uint8))
    run(tmp_path, "--output", tmp_path / "out", "--aligned", "--max-pixels", "1000000", *SIZE)
    (video,) = load_manifest(tmp_path / "out" / "manifest.json").videos
    assert (
        video.status == "broken"
        and "(2000 x 1000 = 2 megapixels)" in video.reason
        and "up to 1 megapixels" in (video.reason)
    )


def test_exif_orientation_is_applied_before_detection(detected):
    _, _, manifest = detected
    phone = next(video for video in manifest.videos if video.video == "test/real/phone.jpg")
    assert phone.status == "ok" and (phone.width, phone.height) == (300, 400), "the upright size, not the stored one"
    image, info = read_image(phone.source_path)
    assert image.shape[:2] == (400, 300) and info.rotated
    boxes = np.load(manifest.clip_path(phone.clips[0]))["boxes"]
    (face,) = build_detector(manifest.preprocessing.detector).detect(image)
    assert boxes[0].tolist() == face.box.to_list(), "found on the upright photo"


def test_a_second_run_skips_the_done_photos(photos, detected):
    out, _, manifest = detected
    clip = manifest.clip_path(next(v for v in manifest.videos if v.status == "ok").clips[0])
    stamp = clip.stat().st_mtime_ns
    again = run(photos, "--output", out, *SIZE)
    assert "9 image(s) already done" in again and "0 processed now" in again
    assert clip.stat().st_mtime_ns == stamp, "finished photos are not redone"
    assert load_manifest(out / "manifest.json").to_dict()["videos"] == manifest.to_dict()["videos"]
    with pytest.raises(CommandError, match="other settings"):
        run(photos, "--output", out, *SIZE, "--aligned")


# --- aligned faces --------------------------------------------------------------------------------------------------


def test_aligned_photos_are_resized_whole_without_a_detector(tmp_path):
    save(tmp_path / "real" / "a.png", tile((200, 40, 40)))
    save(tmp_path / "fake" / "b.jpg", tile((40, 200, 40), width=64, height=40))
    # Upright: red top half, blue bottom half; stored turned a quarter, with orientation 6 to turn it back.
    upright = np.zeros((64, 40, 3), np.uint8)
    upright[:32], upright[32:] = (255, 0, 0), (0, 0, 255)
    save(tmp_path / "fake" / "turned.png", np.ascontiguousarray(np.rot90(upright)), orientation=6)
    run(tmp_path, "--output", tmp_path / "out", "--aligned", *SIZE)
    manifest = load_manifest(tmp_path / "out" / "manifest.json")
    records = {video.video: video for video in manifest.videos}
    assert all(video.status == "ok" and len(video.clips) == 1 for video in records.values())
    prep = manifest.preprocessing
    for video in records.values():
        stored = np.load(manifest.clip_path(video.clips[0]))
        image, _ = read_image(video.source_path)
        assert stored["crops"].shape == (1, 64, 64, 3)
        assert np.array_equal(stored["crops"][0], whole_image_crop(image, prep))
        assert stored["boxes"][0].tolist() == [0, 0, video.width, video.height]
    turned = records["fake/turned.png"]
    assert (turned.width, turned.height) == (40, 64)
    crop = np.load(manifest.clip_path(turned.clips[0]))["crops"][0]
    assert crop[:28].mean(axis=(0, 1)).round().tolist() == [255, 0, 0], "upright: red on top"
    assert ImageExtractor(ImageSettings(prep, aligned=True)).detector is None
    bgr = Preprocessing(image_size=32, colour_order="BGR")
    assert whole_image_crop(upright, bgr)[0, 0].tolist() == [0, 0, 255], "the model's colour order"


def test_140k_shards_in_two_processes_merge_but_never_with_videos(tmp_path):
    images = tmp_path / "140k" / "real_vs_fake" / "real-vs-fake"
    rows: dict[str, list[tuple[str, str, str]]] = {"train": [], "valid": [], "test": []}
    for number in range(8):
        split = ("train", "valid", "test")[number % 3]
        label, word = ("1", "real") if number % 2 else ("0", "fake")
        relpath = f"{split}/{word}/{number:05d}.jpg"
        save(images / relpath, tile((30 * number, 100, 160)))
        rows[split].append((label, word, relpath))
    for split, split_rows in rows.items():
        _write_140k_csv(tmp_path / "140k" / f"{split}.csv", split_rows)
    out = tmp_path / "out"
    args = [tmp_path / "140k", "--layout", "140k", "--aligned", "--output", out, *SIZE]
    first = run(*args, "--shard", "1/2", "--workers", "2")
    run(*args, "--shard", "2/2")
    assert "Images by split, class and status:" in first
    assert len(load_manifest(out / "manifest-shard-1-of-2.json").videos) > 1, "the first shard ran in two processes"
    merged = merge_manifests(sorted(out.glob("manifest-shard-*.json")), tmp_path / "all" / "manifest.json")
    assert merged.media == "images" and len(merged.videos) == 8 and len(merged.clips()) == 8
    assert {(v.split, v.label) for v in merged.videos} >= {("train", "FAKE"), ("val", "REAL"), ("test", "FAKE")}
    sources = json.loads((tmp_path / "all" / "manifest.json").read_text())["sources"]
    assert {source["shard"] for source in sources} == {"1/2", "2/2"}
    videos = synthetic_manifest(tmp_path / "videos", videos_per_label=1, clips_per_video=1)
    with pytest.raises(ManifestError, match="photos and of videos are not merged"):
        merge_manifests([tmp_path / "all" / "manifest.json", videos], tmp_path / "bad.json")


def test_old_manifests_load_as_videos(tmp_path):
    path = synthetic_manifest(tmp_path, videos_per_label=1, clips_per_video=1)
    data = json.loads(path.read_text())
    assert data.pop("media") == "videos"
    path.write_text(json.dumps(data))
    assert load_manifest(path).media == "videos"
    path.write_text(json.dumps({**data, "media": "audio"}))
    with pytest.raises(ManifestError, match="damaged"):
        load_manifest(path)


def test_bad_input_is_a_one_line_error(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run(tmp_path / "missing", "--output", tmp_path / "o")
    with pytest.raises(CommandError, match="no images under a real/ or fake/"):
        run(tmp_path, "--output", tmp_path / "o")
    with pytest.raises(CommandError, match=r"neither train\.csv"):
        run(tmp_path, "--layout", "140k", "--output", tmp_path / "o")
    with pytest.raises(CommandError, match="--max-pixels must be at least 1"):
        run(tmp_path, "--output", tmp_path / "o", "--max-pixels", "0")
