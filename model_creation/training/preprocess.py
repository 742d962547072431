"""A preprocessing run: many videos (or photos), several processes, resumable, shardable across machines.

The run loop knows nothing of what it extracts: the :class:`ExtractorSettings` it is given build the extractor in
each process (``ExtractSettings`` for videos, ``ImageSettings`` for photos) and say what the manifest records.

The output folder holds ``preprocess.json`` (the settings; a later run into the same folder must use the same ones),
``records/<video id>.json`` (written by the worker once a video's clips are on disk: a video with a record is done,
so an interrupted run resumes where it stopped) and ``clips/``. The manifest is assembled from the records of the
videos this run covers (its shard, if any), so shards can share one folder or use separate ones and be merged.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tqdm import tqdm

from .extract import Extractor, ExtractorSettings
from .layouts import VideoEntry
from .manifest import OK, Manifest, VideoRecord, write_json

SETTINGS_FILE = "preprocess.json"
RECORDS_DIR = "records"
LOCK_FILE = ".preprocess.lock"


class PreprocessError(ValueError):
    """A run that cannot start (conflicting settings, unusable output folder)."""


@dataclass
class RunSummary:
    manifest: Manifest
    manifest_path: Path
    done_before: int  # videos (or photos) skipped because an earlier run finished them
    processed: int
    failures: list[VideoRecord] = field(default_factory=list)  # every video that yielded no clip, with the reason

    def status_counts(self) -> Counter:
        return Counter(video.status for video in self.manifest.videos)


def manifest_name(shard: tuple[int, int] | None) -> str:
    return "manifest.json" if shard is None else f"manifest-shard-{shard[0]}-of-{shard[1]}.json"


def _check_settings(out_dir: Path, settings: ExtractorSettings) -> None:
    path = out_dir / SETTINGS_FILE
    wanted = settings.to_dict()
    if path.is_file():
        existing = json.loads(path.read_text())
        if existing != wanted:
            changed = sorted(key for key in {*wanted, *existing} if existing.get(key) != wanted.get(key))
            raise PreprocessError(
                f"'{out_dir}' was preprocessed with other settings ({', '.join(changed)} differ); resume with the "
                "same settings or write to a new folder."
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, wanted)


def _record_path(out_dir: Path, video_id: str) -> Path:
    return out_dir / RECORDS_DIR / f"{video_id}.json"


def _read_record(path: Path) -> VideoRecord | None:
    """The record of a finished video, or None when the video must be done (again): no record, an unreadable one,
    or one whose clip files are not all there and non-empty (a run killed before this file format wrote clips
    whole, or a file deleted since)."""
    try:
        record = VideoRecord.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    out_dir = path.parent.parent
    for clip in record.clips:
        try:
            if (out_dir / clip.file).stat().st_size == 0:
                return None
        except OSError:
            return None
    return record


@contextmanager
def folder_lock(out_dir: Path, shard: tuple[int, int] | None) -> Iterator[None]:
    """Keep two runs from writing the same clips: a whole-folder run holds the folder exclusively, a shard shares
    it with other shards and holds its own shard exclusively. Advisory locks (``flock``), released when the process
    ends, however it ends; where ``fcntl`` is missing (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    wanted = [(out_dir / LOCK_FILE, fcntl.LOCK_EX if shard is None else fcntl.LOCK_SH)]
    if shard is not None:
        wanted.append((out_dir / f"{LOCK_FILE}-shard-{shard[0]}-of-{shard[1]}", fcntl.LOCK_EX))
    with ExitStack() as held:
        for lock_path, mode in wanted:
            handle = held.enter_context(open(lock_path, "a+"))
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PreprocessError(
                    f"Another preprocessing run is writing to '{out_dir}'"
                    + (f" (shard {shard[0]} of {shard[1]}, or the whole folder)" if shard else "")
                    + "; wait for it to finish, or write to another folder. Two runs on one folder would corrupt "
                    "its clips."
                ) from None
        yield


# --- worker processes -----------------------------------------------------------------------------------------------

_worker: Extractor | None = None


def _init_worker(settings: ExtractorSettings) -> None:
    global _worker  # noqa: PLW0603 - one detector per worker process, built once
    import torch

    torch.set_num_threads(1)
    _worker = settings.extractor()


def _process(extractor: Extractor, entry: VideoEntry, out_dir: Path) -> VideoRecord:
    record = extractor.extract(entry, out_dir)
    write_json(_record_path(out_dir, entry.video_id), record.to_dict())
    return record


def _work(entry: VideoEntry, out_dir: Path) -> VideoRecord:
    assert _worker is not None
    return _process(_worker, entry, out_dir)


# --- the run --------------------------------------------------------------------------------------------------------


def run_preprocess(
    entries: list[VideoEntry],
    out_dir: Path,
    settings: ExtractorSettings,
    *,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    sources: list[dict[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> RunSummary:
    """Preprocess ``entries`` (already restricted to this shard) into ``out_dir`` and write its manifest."""
    out_dir = Path(out_dir)
    _check_settings(out_dir, settings)
    with folder_lock(out_dir, shard):
        return _run_locked(entries, out_dir, settings, workers, retry_failed, progress, sources, log, shard)


def _run_locked(
    entries: list[VideoEntry],
    out_dir: Path,
    settings: ExtractorSettings,
    workers: int,
    retry_failed: bool,
    progress: bool,
    sources: list[dict[str, Any]] | None,
    log: Callable[[str], None] | None,
    shard: tuple[int, int] | None,
) -> RunSummary:
    (out_dir / RECORDS_DIR).mkdir(exist_ok=True)
    unit = settings.media.removesuffix("s")  # "video" or "image", for messages
    ids = [entry.video_id for entry in entries]
    if len(set(ids)) != len(ids):
        raise PreprocessError(f"The input lists the same {unit} more than once.")
    records: dict[str, VideoRecord] = {}
    todo: list[VideoEntry] = []
    for entry in entries:
        record = _read_record(_record_path(out_dir, entry.video_id))
        if record is not None and (record.status == OK or not retry_failed):
            records[entry.video_id] = record
        else:
            todo.append(entry)
    done_before = len(records)
    say = log or (lambda message: None)
    if done_before:
        say(f"{done_before} {unit}(s) already done in an earlier run: skipped.")
    bar = tqdm(total=len(todo), desc=settings.media, unit=unit, file=sys.stderr, disable=not progress or not todo)
    try:
        if workers <= 1 or len(todo) <= 1:
            extractor = settings.extractor() if todo else None  # loads the detector only when there is work
            for entry in todo:
                records[entry.video_id] = _process(cast(Extractor, extractor), entry, out_dir)
                bar.update(1)
        else:
            _run_pool(todo, out_dir, settings, workers, records, bar)
    finally:
        bar.close()
    videos = [records[entry.video_id] for entry in entries if entry.video_id in records]
    manifest = Manifest(
        preprocessing=settings.preprocessing,
        sequence_length=settings.sequence_length,
        max_windows=settings.max_windows,
        videos=videos,
        root=out_dir,
        sources=list(sources or []),
        media=settings.media,
    )
    path = out_dir / manifest_name(shard)
    manifest.save(path)
    return RunSummary(
        manifest=manifest,
        manifest_path=path,
        done_before=done_before,
        processed=len(todo),
        failures=[video for video in videos if video.status != OK],
    )


def _run_pool(
    todo: list[VideoEntry],
    out_dir: Path,
    settings: ExtractorSettings,
    workers: int,
    records: dict[str, VideoRecord],
    bar: tqdm,
) -> None:
    """Spawned processes (no fork of a parent that has loaded torch), at most ``2 * workers`` files in flight."""
    context = multiprocessing.get_context("spawn")
    queue = list(reversed(todo))
    unit = settings.media.removesuffix("s")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(settings,)) as pool:
        running: dict[Future, VideoEntry] = {}
        while queue or running:
            while queue and len(running) < 2 * workers:
                entry = queue.pop()
                running[pool.submit(_work, entry, out_dir)] = entry
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                entry = running.pop(future)
                try:
                    records[entry.video_id] = future.result()
                except BrokenProcessPool as exc:  # a worker died: out of memory, or a crash in native code
                    raise PreprocessError(
                        f"A worker process died while processing '{entry.relpath}' or a {unit} beside it ({exc}). "
                        "Finished videos are kept: run the same command again to resume (with fewer --workers if "
                        "memory ran out)."
                    ) from exc
                bar.update(1)
