"""The ``140k`` layout: Kaggle's "140k Real and Fake Faces" (70k FFHQ photos, 70k StyleGAN faces), as downloaded.

Its root holds ``train.csv``, ``valid.csv`` and ``test.csv`` (an unnamed index column, ``original_path``, ``id``,
``label``, ``label_str``, ``path``) with ``path`` relative to ``real_vs_fake/real-vs-fake/``; people often move that
folder up, so the photos are looked for under the root, ``root/real_vs_fake/real-vs-fake`` and
``root/real-vs-fake``. Without the CSVs the folders alone (``train|valid|test/real|fake/*.jpg``) are read as the
``folder`` layout. The CSV a row comes from is its split.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..labels import parse_label
from .common import IMAGES, LayoutError, VideoEntry, grouper
from .generic import folder_layout

CSV_SPLITS = {"train.csv": "train", "valid.csv": "val", "test.csv": "test"}
_IMAGE_FOLDERS = (".", "real_vs_fake/real-vs-fake", "real-vs-fake")


def _candidates(root: Path) -> list[Path]:
    return [root / folder if folder != "." else root for folder in _IMAGE_FOLDERS]


def _row_label(row: dict[str, str]) -> str | None:
    """REAL/FAKE from ``label_str`` ('real'/'fake') when it is there, else from ``label``.

    In this dataset ``label`` 1 means real and 0 fake (FFHQ photos are 1), the opposite of the project's default
    for numeric labels, so the numbers are read with ``one_means="REAL"`` whatever ``--one-means`` says.
    """
    from_words = parse_label(row.get("label_str") or "", "REAL")
    return from_words or parse_label(row.get("label") or "", "REAL")


def _read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise LayoutError(f"'{path}' has no 'path' column (the 140k dataset's CSVs have path and label_str).")
        return list(enumerate(reader, start=2))


def _image_root(root: Path, first: str) -> Path:
    """The folder the CSVs' paths are relative to: the first candidate that holds the first listed photo."""
    for folder in _candidates(root):
        if (folder / first).is_file():
            return folder.resolve()
    looked = ", ".join(str(folder) for folder in _candidates(root))
    raise LayoutError(f"'{first}' (the first photo the 140k CSVs list) is in none of {looked}.")


def faces140k_layout(root: Path, dataset: str = "140k", group_regex: str | None = None) -> list[VideoEntry]:
    """The dataset's own CSVs (its splits), or its folders when the CSVs are absent."""
    present = [(root / name, split) for name, split in CSV_SPLITS.items() if (root / name).is_file()]
    if not present:
        splits = ("train", "valid", "test")
        folders = [folder for folder in _candidates(root) if any((folder / split).is_dir() for split in splits)]
        if not folders:
            raise LayoutError(
                f"'{root}' holds neither train.csv/valid.csv/test.csv nor train/, valid/, test/ folders of real/ and "
                "fake/ photos (the '140k' layout)."
            )
        return folder_layout(folders[0], dataset, group_regex, IMAGES)
    rows = [(path, split, line, row) for path, split in present for line, row in _read_csv(path)]
    if not rows:
        raise LayoutError(f"The 140k CSVs under '{root}' list no photos.")
    images = _image_root(root, rows[0][3]["path"].strip())
    group_of = grouper(group_regex, dataset, IMAGES)
    entries = []
    for csv_path, split, line, row in rows:
        name, label = (row.get("path") or "").strip(), _row_label(row)
        if not name or label is None:
            raise LayoutError(f"'{csv_path}' line {line}: expected a path and a label_str real/fake or label 0/1.")
        relpath = Path(name).as_posix()
        entries.append(VideoEntry(images / name, relpath, label, dataset, group_of(relpath), split))
    return entries
