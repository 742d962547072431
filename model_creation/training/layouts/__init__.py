"""Turning a dataset's folder tree into a list of labelled videos with a split and a leakage group.

Each layout knows how one dataset is arranged and what links its videos: a fake made from a source video, and the
identities in it, must never sit on both sides of a train/validation split, so every video gets a ``group`` and the
trainer splits by group. Layouts:

* ``folder``: ``real/`` and ``fake/`` (optionally under ``train/``, ``val/``, ``test/``); group = video stem or the
  first capture group of ``group_regex`` matched against the path relative to the root. A sub-folder of ``fake/``
  names the manipulation method; a folder of images (and no videos) under ``real/`` or ``fake/`` is a video.
* ``csv``: ``filename,label`` rows, with or without a header (see ``labels``: 0 = REAL, 1 = FAKE unless
  ``--one-means REAL``, checked against the real/ fake/ folders the paths name). With a header, optional ``split``,
  ``group``, ``original`` and ``method`` columns are used; a row may name a folder of frames.
* ``ffpp``: FaceForensics++: ``original_sequences/<youtube|actors>/<compression>/videos`` and
  ``manipulated_sequences/<Method>/<compression>/videos``; the official ``train.json``/``val.json``/``test.json``
  split files when given. Group = the connected source ids (``000`` and ``003`` for ``000_003``).
* ``celebdf``: Celeb-real, YouTube-real, Celeb-synthesis and List_of_testing_videos.txt (the official test split;
  its 1 = real column is not read, the folders give the labels, so ``--one-means`` does not concern it).
  Group = the identity whose video it is (``id0`` for ``id0_0000`` and for the fake ``id0_id16_0000``).
* ``dfdc``: ``metadata.json`` per part; group = the original video's name (a real video is its own original).

Photos (:func:`read_image_layout`, for ``preprocess_images``) come in ``folder`` and ``csv`` (the same readers, looking
for photo files, each photo its own group by default) and ``140k`` (Kaggle's "140k Real and Fake Faces": its CSVs or
its folders).

This package owns choosing a layout (:func:`read_layout`) and sharding (:func:`parse_shard`, :func:`in_shard`); the
readers live in one module per dataset family (``generic``: folder and csv; ``ffpp``; ``celebdf``; ``dfdc``), and
``common`` holds :class:`VideoEntry`, :class:`Media`, :class:`LayoutError` and the helpers they share;
``faces140k`` the 140k photo dataset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..labels import DEFAULT_ONE_MEANS, OneMeans
from .celebdf import celebdf_layout
from .common import IMAGES, SPLITS, VIDEO_SUFFIXES, VIDEOS, LayoutError, Media, VideoEntry
from .dfdc import dfdc_layout
from .faces140k import faces140k_layout
from .ffpp import ffpp_layout, read_ffpp_splits
from .generic import csv_layout, folder_layout

LAYOUTS = ("folder", "csv", "ffpp", "celebdf", "dfdc")
IMAGE_LAYOUTS = ("folder", "csv", "140k")

__all__ = [
    "IMAGES",
    "IMAGE_LAYOUTS",
    "LAYOUTS",
    "SPLITS",
    "VIDEOS",
    "VIDEO_SUFFIXES",
    "LayoutError",
    "Media",
    "VideoEntry",
    "celebdf_layout",
    "csv_layout",
    "dfdc_layout",
    "faces140k_layout",
    "ffpp_layout",
    "folder_layout",
    "in_shard",
    "parse_shard",
    "read_ffpp_splits",
    "read_image_layout",
    "read_layout",
]


def read_layout(
    layout: str,
    source: Path,
    *,
    dataset: str | None = None,
    group_regex: str | None = None,
    one_means: OneMeans = DEFAULT_ONE_MEANS,
    videos_dir: Path | None = None,
    splits_dir: Path | None = None,
    compression: str | None = None,
) -> list[VideoEntry]:
    """The entries of ``source`` read with ``layout``; LayoutError says what does not fit."""
    _check_source(layout, source, LAYOUTS)
    name = dataset or layout
    if layout == "folder":
        return folder_layout(source, name, group_regex)
    if layout == "csv":
        return csv_layout(source, videos_dir, name, one_means, group_regex)
    if layout == "ffpp":
        return ffpp_layout(source, splits_dir, compression, name)
    if layout == "celebdf":
        return celebdf_layout(source, name)
    return dfdc_layout(source, name)


def read_image_layout(
    layout: str,
    source: Path,
    *,
    dataset: str | None = None,
    group_regex: str | None = None,
    one_means: OneMeans = DEFAULT_ONE_MEANS,
    images_dir: Path | None = None,
) -> list[VideoEntry]:
    """The photos of ``source`` read with ``layout`` (one of IMAGE_LAYOUTS); LayoutError says what does not fit."""
    _check_source(layout, source, IMAGE_LAYOUTS)
    name = dataset or layout
    if layout == "folder":
        return folder_layout(source, name, group_regex, IMAGES)
    if layout == "csv":
        return csv_layout(source, images_dir, name, one_means, group_regex, IMAGES)
    return faces140k_layout(source, name, group_regex)


def _check_source(layout: str, source: Path, choices: tuple[str, ...]) -> None:
    if layout not in choices:
        raise LayoutError(f"Unknown layout '{layout}'; choose one of {', '.join(choices)}.")
    if not source.exists():
        raise LayoutError(f"'{source}' does not exist.")
    if layout != "csv" and not source.is_dir():
        raise LayoutError(f"The '{layout}' layout reads a folder; '{source}' is a file.")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (K from 1 to N) -> (K, N)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise LayoutError(f"--shard takes K/N with whole numbers, e.g. 1/4; got '{text}'.") from exc
    if n < 1 or not 1 <= k <= n:
        raise LayoutError(f"--shard {text}: K must be between 1 and N.")
    return k, n


def in_shard(entry: VideoEntry, k: int, n: int) -> bool:
    """Whether shard K of N takes this video: a hash of its id, so every machine agrees without talking."""
    return int(hashlib.sha1(entry.video_id.encode()).hexdigest(), 16) % n == k - 1
