"""The decoded crops of a preprocessing folder in one memory-mapped array, so an epoch never decompresses a clip.

A clip file (``clips/<video>/<window>_<track>.npz``) is compressed: reading one frame of it decompresses all of
them (40 frames, 1.5 MB at 112 px), and a frame model reads one frame per clip and epoch. ``build_crop_cache``
decodes every clip file under a preprocessing folder once into ``crop_cache/crops.npy`` (uint8, ``(frames, size,
size, 3)``, exactly the stored crops) with ``crop_cache/index.json`` (per clip file: first row, frame count, and the
file's size and modification time when it was read). :func:`read_frames` serves a run of frames from it by slicing
the memory map (pages shared between loader processes, read once from disk); a clip file changed since, or not in
the cache, is read from the file itself, so the cache can only save time, never change what a run sees.

Experiment manifests point at the clip files of another folder; the cache is found from the clip file's own path
(``<folder>/clips/<video>/<file>.npz``), whichever manifest names it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_app.detection.files import atomic_write_text

from .extract import CLIPS_DIR, UNREADABLE, load_clip, unreadable_clip

CACHE_DIR = "crop_cache"
ARRAY, INDEX, LOCK = "crops.npy", "index.json", ".lock"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Entry:
    row: int
    frames: int
    size: int
    mtime_ns: int


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _crops_shape(path: Path) -> tuple[int, ...]:
    """The shape of a clip file's ``crops`` array, read from its header without decompressing the frames."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("crops.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, _ = read_header(member)
    except FileNotFoundError:
        raise
    except UNREADABLE as exc:
        raise unreadable_clip(path, exc) from exc
    return tuple(shape)


def clip_files(folder: Path) -> list[Path]:
    """Every clip file of a preprocessing folder, in a stable order."""
    return sorted((folder / CLIPS_DIR).glob("*/*.npz"))


def build_crop_cache(folder: str | os.PathLike, say=lambda message: None) -> Path | None:
    """Decode every clip file under ``folder`` into its cache, unless an up-to-date cache is there; returns the
    cache folder (None when the folder holds no clip). Several processes may call it at once: one builds, the
    others wait for it and then find the cache up to date."""
    folder = Path(folder).resolve()
    files = clip_files(folder)
    if not files:
        return None
    cache = folder / CACHE_DIR
    cache.mkdir(exist_ok=True)
    with open(cache / LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _up_to_date(cache, folder, files):
            return cache
        say(f"Caching the decoded crops of {len(files)} clip files in {cache} (once; later runs reuse it) ...")
        shapes = {path: _crops_shape(path) for path in files}
        frame_shapes = {shape[1:] for shape in shapes.values()}
        if len(frame_shapes) != 1:
            raise ValueError(f"The clip files under '{folder}' hold crops of several sizes: {sorted(frame_shapes)}.")
        total = sum(shape[0] for shape in shapes.values())
        partial = cache / f".{ARRAY}.partial"
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(total, *frame_shapes.pop()))
        index: dict[str, list[int]] = {}
        row = 0
        for path in files:
            size, mtime = _stamp(path)
            crops = load_clip(path)
            array[row : row + len(crops)] = crops
            index[str(path.relative_to(folder))] = [row, len(crops), size, mtime]
            row += len(crops)
        array.flush()
        del array
        partial.replace(cache / ARRAY)
        atomic_write_text(cache / INDEX, json.dumps({"format_version": FORMAT_VERSION, "clips": index}))
        _OPEN.pop(folder, None)
        return cache


def _read_index(cache: Path) -> dict[str, list[int]] | None:
    try:
        data = json.loads((cache / INDEX).read_text())
    except (OSError, ValueError):
        return None
    if data.get("format_version") != FORMAT_VERSION or not (cache / ARRAY).is_file():
        return None
    return data.get("clips")


def _up_to_date(cache: Path, folder: Path, files: list[Path]) -> bool:
    index = _read_index(cache)
    if index is None or len(index) != len(files):
        return False
    for path in files:
        entry = index.get(str(path.relative_to(folder)))
        if entry is None or tuple(entry[2:]) != _stamp(path):
            return False
    return True


class _OpenCache:
    """One cache, opened once per process (the memory map is made lazily, after a DataLoader's fork)."""

    def __init__(self, cache: Path, index: dict[str, list[int]]):
        self.cache = cache
        self.entries = {name: Entry(*values) for name, values in index.items()}
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.cache / ARRAY, mmap_mode="r")
        return self._array


_OPEN: dict[Path, _OpenCache | None] = {}
_OPEN_LOCK = threading.Lock()


def _cache_for(folder: Path) -> _OpenCache | None:
    with _OPEN_LOCK:
        if folder not in _OPEN:
            cache = folder / CACHE_DIR
            index = _read_index(cache)
            _OPEN[folder] = _OpenCache(cache, index) if index is not None else None
        return _OPEN[folder]


def _entry_of(path: Path) -> tuple[_OpenCache | None, Entry | None]:
    """The open cache of a clip file's folder and the file's entry in it, if the cache holds this very file."""
    folder = path.parent.parent.parent
    opened = _cache_for(folder) if path.parent.parent.name == CLIPS_DIR else None
    entry = opened.entries.get(str(path.relative_to(folder))) if opened is not None else None
    if entry is None or (entry.size, entry.mtime_ns) != _stamp(path):
        return opened, None
    return opened, entry


def read_frames(path: Path, start: int = 0, count: int | None = None) -> np.ndarray:
    """Frames ``start`` to ``start + count`` (all from ``start`` when None) of a clip file's crops: from the
    folder's cache when it holds this very file, else decoded from the file. Always a fresh array."""
    path = Path(os.path.normpath(path))
    opened, entry = _entry_of(path)
    if opened is not None and entry is not None:
        stop = entry.frames if count is None else min(entry.frames, start + count)
        return np.array(opened.array[entry.row + start : entry.row + stop])
    crops = load_clip(path)
    return np.array(crops[start : None if count is None else start + count])


def clip_length(path: Path) -> int:
    """How many frames a clip file holds (from the cache's index when it has the file)."""
    _, entry = _entry_of(Path(os.path.normpath(path)))
    if entry is not None:
        return entry.frames
    try:
        return int(_crops_shape(path)[0])
    except FileNotFoundError:
        raise
    except Exception:  # a damaged file: load_clip says what is wrong in words (ClipFileError)
        return len(load_clip(path))
