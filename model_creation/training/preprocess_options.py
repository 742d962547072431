"""The command-line side that preprocess_videos and preprocess_images share, defined once: the crop, grouping and
running flags (so both take the same spellings, defaults and help), preprocessing from those flags or a file,
choosing this run's entries (shard, limit) and the final report.
"""

from __future__ import annotations

from argparse import ArgumentParser
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_app.detection.preprocessing import DETECTOR_BACKENDS, DETECTOR_MODEL_CHOICES, Preprocessing, detector_flag_help

from .labels import DEFAULT_ONE_MEANS
from .layouts import VideoEntry, in_shard
from .manifest import VideoRecord
from .options import crop_defaults, preprocessing_from_file, preprocessing_from_options

if TYPE_CHECKING:  # the run itself loads the decoders: only the commands' handle() needs it
    from .preprocess import RunSummary

_CROP_DEFAULTS = crop_defaults()  # the app's Preprocessing / DetectorSettings defaults
_REPORT_LINES = 40
ONE_MEANS_CHOICES = ("FAKE", "REAL")
ONE_MEANS_HELP = (
    "csv: what a numeric label 1 means: FAKE by default (0 = REAL, 1 = FAKE, as the training guide writes them); "
    "REAL for files written the other way (1 = REAL, 0 = FAKE). A file whose numbers contradict its real/ and fake/ "
    "folders is refused. Words REAL/FAKE, Celeb-DF's and the 140k dataset's own conventions are not affected"
)


def add_crop_arguments(parser: ArgumentParser, *, tracking: bool = True) -> None:
    """``--image-size``, ``--margin``, the detector flags and ``--preprocessing-from``; ``tracking`` adds
    ``--full-detect-every``, which only means something for faces followed through frames."""
    crops = parser.add_argument_group("crops (stored in the manifest and later in the checkpoint)")
    crops.add_argument("--image-size", type=int, help=f"crop size in pixels (default {_CROP_DEFAULTS['image_size']})")
    crops.add_argument(
        "--margin",
        type=float,
        help=f"margin around the face, fraction of its size (default {_CROP_DEFAULTS['margin']})",
    )
    detector_help = detector_flag_help()
    crops.add_argument("--detector-backend", choices=DETECTOR_BACKENDS, help=detector_help["detector_backend"])
    crops.add_argument("--detector-model", choices=DETECTOR_MODEL_CHOICES, help=detector_help["detector_model"])
    crops.add_argument("--detector-max-side", type=int, help=detector_help["detector_max_side"])
    if tracking:
        crops.add_argument("--full-detect-every", type=int, help=detector_help["full_detect_every"])
    crops.add_argument(
        "--preprocessing-from",
        metavar="FILE",
        help="take every crop setting from a checkpoint (.pt) or a JSON file instead of the flags above",
    )


def preprocessing_from_flags(options: dict[str, Any]) -> Preprocessing:
    """The Preprocessing the crop flags (or ``--preprocessing-from``) describe; ValueError when both are given."""
    given = [name for name in _CROP_DEFAULTS if options.get(name) is not None]
    if options.get("preprocessing_from"):
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"--preprocessing-from sets every crop setting; drop {flags}.")
        return preprocessing_from_file(Path(options["preprocessing_from"]))
    return preprocessing_from_options({name: options[name] for name in given})


def add_grouping_arguments(group: Any, unit: str) -> None:
    """``--group-regex`` and ``--one-means`` (``group`` is a parser or an argument group)."""
    group.add_argument(
        "--group-regex", help=f"folder/csv: group = first capture group of this regex on the {unit}'s path"
    )
    group.add_argument(
        "--one-means",
        choices=ONE_MEANS_CHOICES,
        default=DEFAULT_ONE_MEANS,
        help=ONE_MEANS_HELP,
    )


def add_run_arguments(parser: ArgumentParser, unit: str) -> None:
    """``--workers``, ``--shard``, ``--retry-failed``, ``--limit``, ``--no-progress``; ``unit`` names what is run."""
    run = parser.add_argument_group("running")
    run.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    run.add_argument("--shard", help="K/N: this machine takes shard K of N (K from 1); merge with merge_manifests")
    run.add_argument("--retry-failed", action="store_true", help=f"process again {unit}s that failed before")
    run.add_argument("--limit", type=int, help=f"only the first N {unit}s (a quick trial)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def select_entries(
    entries: list[VideoEntry], shard: tuple[int, int] | None, limit: int | None
) -> tuple[list[VideoEntry], str]:
    """This run's entries (its shard, then the first ``limit``) and a note saying how many of how many."""
    total = len(entries)
    if shard:
        entries = [entry for entry in entries if in_shard(entry, *shard)]
    if limit:
        entries = entries[:limit]
    return entries, (f" (shard {shard[0]}/{shard[1]}: {len(entries)} of {total})" if shard else "")


def announce_and_run(
    entries: list[VideoEntry],
    settings: Any,
    options: dict[str, Any],
    shard: tuple[int, int] | None,
    *,
    unit: str,
    say: Callable[[str], None],
    where: str = "",
    mode: str = "",
    **source_details: Any,
) -> RunSummary:
    """What both preprocess commands do once their entries are read: say what is about to be processed (how many,
    their labels and groups, the table per split and class), record the source and run it (``settings`` is an
    ExtractSettings or an ImageSettings). A PreprocessError says why a run cannot start."""
    from .preprocess import run_preprocess  # the run loads the decoders: not at the commands' import
    from .statistics import entries_table

    source = Path(options["input"])
    described = f"{options['layout']} layout" + (f", {mode}" if mode else "")
    say(f"{len(entries)} {unit}(s) from '{source}' ({described}){where}.")
    say(label_line(entries))
    say(f"{unit.capitalize()}s per split and class, before preprocessing:\n" + entries_table(entries, unit == "image"))
    sources = [
        {
            "input": str(source.resolve()),
            "layout": options["layout"],
            "dataset": options["dataset"] or options["layout"],
            "shard": options["shard"],
            f"{unit}s": len(entries),
            **source_details,
        }
    ]
    return run_preprocess(
        entries,
        Path(options["output"]),
        settings,
        workers=options["workers"],
        shard=shard,
        retry_failed=options["retry_failed"],
        progress=not options["no_progress"],
        sources=sources,
        log=say,
    )


def label_line(entries: list[VideoEntry]) -> str:
    labels = Counter(entry.label for entry in entries)
    return f"  REAL {labels['REAL']}, FAKE {labels['FAKE']}, groups {len({e.group for e in entries})}"


def status_table(videos: list[VideoRecord]) -> list[str]:
    """Files per split x class (rows) and status (columns), with totals: what the run made of each part."""
    statuses = sorted({video.status for video in videos}, key=lambda status: (status != "ok", status))
    counts = Counter((video.split or "-", video.label, video.status) for video in videos)
    rows = sorted({(split, label) for split, label, _ in counts}, key=lambda row: (_split_order(row[0]), row[1]))
    header = ["split", "class", *statuses, "total"]
    table = [header]
    for split, label in rows:
        cells = [counts[(split, label, status)] for status in statuses]
        table.append([split, label, *map(str, cells), str(sum(cells))])
    totals = [sum(1 for video in videos if video.status == status) for status in statuses]
    table.append(["all", "", *map(str, totals), str(len(videos))])
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table
    ]


def _split_order(split: str) -> int:
    order = ("train", "val", "test")
    return order.index(split) if split in order else len(order)


def report_lines(summary: RunSummary, unit: str) -> list[str]:
    """The end of a run: counts by status, every file that yielded no clip and why, and where the manifest is."""
    counts = summary.status_counts()
    lines = [
        f"Done: {summary.processed} processed now, {summary.done_before} done before; "
        + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
        + f"; {len(summary.manifest.clips())} clip(s)."
    ]
    if summary.failures:
        lines.append(f"Skipped or broken {unit}s ({len(summary.failures)}), kept out of training:")
        lines += [f"  {video.video}: {video.status}: {video.reason}" for video in summary.failures[:_REPORT_LINES]]
        if len(summary.failures) > _REPORT_LINES:
            lines.append(f"  ... and {len(summary.failures) - _REPORT_LINES} more (all in the manifest)")
    lines.append(f"Manifest: {summary.manifest_path}")
    return lines
