"""The data of the second default-model recipe: every shared video, its group, its source and its fixed split.

Four sources (``../shared/data``): the real talking-head clips, the labelled sample clips (DFDC, FaceForensics++ and
a face-swap demo), FaceForensics++ c40 (originals and their Deepfakes, Face2Face, FaceSwap and NeuralTextures fakes)
and the web clips (real/fake pairs of one shot). A group holds what must not straddle a split: an FF++ pair of
originals with the eight fakes made from them, a web pair, one clip otherwise. The test split is fixed by name, whole
groups of every source, so a rebuild tests on the same videos; leave-one-source-out experiments test on all of one
source and train on the others (:func:`source_of`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("real_clips", "samples", "ffpp_c40", "web_clips")
# The sources a leave-one-source-out experiment holds out (real_clips has no fakes to test on).
HELD_OUT_SOURCES = ("ffpp_c40", "web_clips", "samples")
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")

# The fixed test split, by name: two FF++ pairs with their fakes, two FF++ actor originals, two web pairs and one
# web fake without its source, every fourth real clip, one real and one fake sample.
TEST_FFPP_PAIRS = ("672_720", "866_878")
TEST_FFPP_ACTORS = 2  # the last two actor originals in name order
TEST_WEB_SHOTS = ("Clinton", "Taxi", "Guy")
TEST_REAL_SAMPLES = ("hamilton_360p.mp4",)
TEST_FAKE_SAMPLES = ("ffpp_df_003_000.mp4",)
SAMPLE_METHODS = {
    "dfdc_abofeumbvv.mp4": "dfdc",
    "dfdc_abqwwspghj.mp4": "dfdc",
    "ffpp_df_003_000.mp4": "ffpp-deepfakes",
    "demo_fake_720p.mp4": "face-swap-demo",
}


@dataclass(frozen=True)
class Row:
    filename: str
    label: str
    split: str
    group: str  # "<source>:<name>", so the source of a video is its group's prefix
    method: str


def source_of(group: str) -> str:
    """The source of a row's group, also once preprocessing has prefixed it with the dataset's name
    (``shared-data:ffpp_c40:183_253``)."""
    parts = group.split(":")
    return next((part for part in parts if part in SOURCES), parts[0])


def dataset_rows(data: Path) -> list[Row]:
    """Every video of the recipe with its label, fixed split, group and method, in a stable order."""
    missing = [name for name in SOURCES if not (data / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"'{data}' lacks {', '.join(missing)}: is it the project's shared data?")
    return [*_real_clips(data), *_samples(data), *_ffpp(data / "ffpp_c40"), *_web(data / "web_clips")]


def _real_clips(data: Path) -> list[Row]:
    clips = sorted((data / "real_clips").glob("*.mp4"))
    return [
        Row(str(path), "REAL", "test" if index % 4 == 0 else "train", f"real_clips:{path.stem}", "real")
        for index, path in enumerate(clips)
    ]


def _samples(data: Path) -> list[Row]:
    videos = data / "samples" / "videos"
    rows = [
        Row(str(path), "REAL", "test" if path.name in TEST_REAL_SAMPLES else "train", f"samples:{path.stem}", "real")
        for path in sorted((videos / "real").glob("*.mp4"))
    ]
    rows += [
        Row(
            str(path),
            "FAKE",
            "test" if path.name in TEST_FAKE_SAMPLES else "train",
            f"samples:{path.stem}",
            SAMPLE_METHODS.get(path.name, "unknown"),
        )
        for path in sorted((videos / "fake").glob("*.mp4"))
    ]
    return rows


def _ffpp_pair(first: str, second: str) -> str:
    return "_".join(sorted((first, second)))


def _ffpp(root: Path) -> list[Row]:
    """Originals and fakes; a fake ``A_B`` (A's video, B's face) joins the group of the pair {A, B} with both
    originals, so neither identity is seen in training when the pair is tested."""
    pair_of: dict[str, str] = {}
    fakes = []
    for method in FFPP_METHODS:
        for path in sorted((root / "manipulated_sequences" / method).glob("*/videos/*.mp4")):
            target, source = path.stem.split("_")[:2]
            pair = _ffpp_pair(target, source)
            pair_of.setdefault(target, pair)
            pair_of.setdefault(source, pair)
            fakes.append((path, pair, f"ffpp-{method.lower()}"))
    rows = []
    for path in sorted((root / "original_sequences" / "youtube").glob("*/videos/*.mp4")):
        pair = pair_of.get(path.stem, path.stem)
        rows.append(Row(str(path), "REAL", "test" if pair in TEST_FFPP_PAIRS else "train", f"ffpp_c40:{pair}", "real"))
    actors = sorted((root / "original_sequences" / "actors").glob("*/videos/*.mp4"))
    for index, path in enumerate(actors):
        split = "test" if index >= len(actors) - TEST_FFPP_ACTORS else "train"
        rows.append(Row(str(path), "REAL", split, f"ffpp_c40:actor_{path.stem}", "real"))
    for path, pair, method in fakes:
        rows.append(Row(str(path), "FAKE", "test" if pair in TEST_FFPP_PAIRS else "train", f"ffpp_c40:{pair}", method))
    return rows


def _web(root: Path) -> list[Row]:
    """``RealX.mp4`` and ``FakeX.mp4`` show one shot before and after the swap: one group ``X``."""
    rows = []
    for label in ("real", "fake"):
        for path in sorted((root / label).glob("*.mp4")):
            shot = re.sub(r"^(Real|Fake)", "", path.stem)
            split = "test" if shot in TEST_WEB_SHOTS else "train"
            rows.append(
                Row(str(path), label.upper(), split, f"web_clips:{shot}", "real" if label == "real" else "web-fake")
            )
    return rows


def evenly_spaced(count: int, keep: int) -> list[int]:
    """``keep`` indices spread over ``range(count)`` (all of them when there are no more than ``keep``)."""
    if count <= keep:
        return list(range(count))
    return sorted({round(index * (count - 1) / (keep - 1)) for index in range(keep)} if keep > 1 else {count // 2})


def write_dataset_csv(rows: list[Row], target: Path) -> Path:
    """The CSV that ``preprocess_videos --layout csv`` reads (absolute paths, so it can live anywhere)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label", "split", "group", "method"])
        for row in rows:
            writer.writerow([row.filename, row.label, row.split, row.group, row.method])
    return target
