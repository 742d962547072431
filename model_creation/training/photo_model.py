"""The recipe of the default photo model that ships in models/: which photos, which split, which settings.

The photos are the shared data's ``gan_faces`` (FFHQ real faces, StyleGAN fakes, 256 x 256). The split is fixed by
file name, never drawn at random: per class, in name order, every fifth photo is held out for the test figures and
the next one for validation (early stopping, calibration and thresholds), so a rebuild tests on the same photos.
Faces are found and cropped by the detector, as ``analyze_image`` does on the site, not taken whole: the network is
trained on the very crops it will see. Everything the card states about data and splits is decided here.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ml_app.detection.defaults import SHIPPED_PHOTO_FILE

__all__ = [
    "BACKBONE",
    "DATASET",
    "DATA_FOLDER",
    "IMAGE_SIZE",
    "SHIPPED_PHOTO_FILE",
    "PhotoRow",
    "photo_rows",
    "split_of",
    "write_photo_csv",
]
DATA_FOLDER = "gan_faces"
DATASET = "gan-faces"
# Chosen by measurement (models/README.md, "The photo model"): EfficientNet-Lite0 with its bundled ImageNet weights.
BACKBONE = "efficientnet_lite0"
IMAGE_SIZE = 160
EPOCHS = 8


def split_of(index: int) -> str:
    """The split of a class's ``index``-th photo in name order: 20 % test, 20 % validation, 60 % training."""
    return {0: "test", 1: "val"}.get(index % 5, "train")


@dataclass(frozen=True)
class PhotoRow:
    filename: str
    label: str
    split: str


def photo_rows(data: Path) -> list[PhotoRow]:
    """Every photo the default photo model is trained, validated or tested on."""
    folder = data / DATA_FOLDER
    rows: list[PhotoRow] = []
    for label in ("REAL", "FAKE"):
        photos = sorted((folder / label.lower()).glob("*.jpg"))
        if not photos:
            raise FileNotFoundError(f"'{folder / label.lower()}' holds no .jpg photos: is '{data}' the shared data?")
        rows += [PhotoRow(str(path), label, split_of(index)) for index, path in enumerate(photos)]
    return rows


def write_photo_csv(data: Path, target: Path) -> Path:
    """The CSV that ``preprocess_images --layout csv`` reads (absolute paths, so it can live anywhere)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "label", "split"])
        for row in photo_rows(data):
            writer.writerow([row.filename, row.label, row.split])
    return target
