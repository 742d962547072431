"""Layouts for data people arrange themselves: ``folder`` (``real/`` and ``fake/`` folders, optionally under
``train/``, ``val/``, ``test/``) and ``csv`` (``filename,label`` rows, with optional ``split``, ``group``,
``original`` and ``method`` columns under a header). Both read videos or photos: the :class:`Media` they are given
decides which files a folder holds and how files are grouped by default.

A video may also be a **frame folder**: a directory of images (``frame_0.jpg``, ``frame_1.jpg``, ...; read by
``ml_app.detection.frame_folder``). In ``folder`` a directory under ``real/`` or ``fake/`` that holds images and no
videos is one; in ``csv`` a row may name one (``real/video1,0``). Numeric labels are read as ``labels`` says and
checked against the ``real``/``fake`` folders their paths name (:func:`~..labels.numeric_label_problem`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from ml_app.detection.frame_folder import is_frame_folder

from ..labels import DEFAULT_ONE_MEANS, LabelledRow, OneMeans, numeric_label_problem, parse_label
from .common import VIDEOS, LayoutError, Media, VideoEntry, files_under, grouper, relative, split_name


def folder_layout(
    root: Path, dataset: str = "folder", group_regex: str | None = None, media: Media = VIDEOS
) -> list[VideoEntry]:
    """``real/`` and ``fake/`` folders (any case), optionally inside ``train/``, ``val/`` or ``test/``."""
    group_of = grouper(group_regex, dataset, media)
    entries = []
    found = files_under(root, media)
    if media is VIDEOS:
        found = sorted(found + _frame_folders(root))
    for path in found:
        parts = path.relative_to(root).parts
        lowered = [part.lower() for part in parts[:-1]]
        where = next((i for i, part in enumerate(lowered) if part in ("real", "fake")), None)
        if where is None:
            continue
        split = next((split_name(part) for part in lowered[:where] if split_name(part)), "")
        label = lowered[where].upper()
        method = parts[where + 1] if label == "FAKE" and len(parts) - 1 > where + 1 else ""
        relpath = relative(path, root)
        entries.append(VideoEntry(path, relpath, label, dataset, group_of(relpath), split, method))
    if not entries:
        raise LayoutError(f"'{root}' holds no {media.name} under a real/ or fake/ folder (the 'folder' layout).")
    return entries


def _frame_folders(root: Path) -> list[Path]:
    """Directories strictly inside a ``real``/``fake`` folder that hold images and no videos: videos as frames."""
    folders = []
    for path in root.rglob("*"):
        if not path.is_dir() or not is_frame_folder(path):
            continue
        inner = [part.lower() for part in path.relative_to(root).parts[:-1]]
        if "real" in inner or "fake" in inner:
            folders.append(path)
    return folders


# --- csv ------------------------------------------------------------------------------------------------------------

_FILE_COLUMNS = ("file", "filename", "path", "video", "image", "name")


def _csv_header(first: list[str], csv_path: Path, one_means: OneMeans) -> dict[str, int] | None:
    """Column index by lower-case name when the first row is a header (``file`` for the file column), else None."""
    if len(first) >= 2 and parse_label(first[1], one_means) is not None:
        return None  # a filename,label row
    names = [cell.strip().lower() for cell in first]
    file_column = next((names.index(n) for n in _FILE_COLUMNS if n in names), None)
    if file_column is None or "label" not in names:
        raise LayoutError(
            f"'{csv_path}': the first row is neither a filename,label row nor a header naming a file column "
            f"({', '.join(_FILE_COLUMNS)}) and a label column."
        )
    header = {name: index for index, name in enumerate(names)}
    header["file"] = file_column
    return header


def _row_group(
    given: str, original: str, relpath: str, dataset: str, group_regex: str | None, group_of: Callable[[str], str]
) -> str:
    """A row's group: its ``group`` column, else its original's name (unless ``--group-regex``), else by its path."""
    if given:
        return f"{dataset}:{given}"
    if original and not group_regex:
        return f"{dataset}:{Path(original).stem}"
    return group_of(relpath)


def _numbered_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """The CSV's non-blank rows with the line each ends on (what an error names)."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        return [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]


def csv_layout(
    csv_path: Path,
    videos_dir: Path | None = None,
    dataset: str = "csv",
    one_means: OneMeans = DEFAULT_ONE_MEANS,
    group_regex: str | None = None,
    media: Media = VIDEOS,
) -> list[VideoEntry]:
    """``filename,label`` rows; paths relative to ``videos_dir`` (default: the CSV's folder).

    Every row is taken whatever its suffix (a video row may name a frame folder): a file that is not of ``media``'s
    kind is reported by preprocessing. Numeric labels that contradict the ``real``/``fake`` folders of their paths
    are refused (:func:`~..labels.numeric_label_problem`).
    """
    if not csv_path.is_file():
        raise LayoutError(f"'{csv_path}' is not a file: the 'csv' layout reads a CSV of filename,label rows.")
    root = videos_dir or csv_path.parent
    numbered = _numbered_rows(csv_path)
    if not numbered:
        raise LayoutError(f"'{csv_path}' is empty.")
    header = _csv_header(numbered[0][1], csv_path, one_means)
    if header:
        numbered = numbered[1:]
    group_of = grouper(group_regex, dataset, media)

    def cell(row: list[str], name: str, default: int | None = None) -> str:
        index = header.get(name, default) if header else default
        return row[index].strip() if index is not None and index < len(row) else ""

    entries = []
    read: list[LabelledRow] = []
    for line, row in numbered:
        name, raw_label = cell(row, "file", 0), cell(row, "label", 1)
        label = parse_label(raw_label, one_means)
        if not name or label is None:
            raise LayoutError(
                f"'{csv_path}' line {line}: expected a file name and a label REAL, FAKE, 0 or 1, got {row!r}."
            )
        path = (root / name).resolve() if not Path(name).is_absolute() else Path(name)
        relpath = Path(name).as_posix()
        read.append(LabelledRow(line, relpath, raw_label, label))
        original = cell(row, "original")
        group = _row_group(cell(row, "group"), original, relpath, dataset, group_regex, group_of)
        entries.append(
            VideoEntry(
                path, relpath, label, dataset, group, split_name(cell(row, "split")), cell(row, "method"), original
            )
        )
    if not entries:
        raise LayoutError(f"'{csv_path}' has a header but no rows.")
    problem = numeric_label_problem(str(csv_path), read, one_means)
    if problem:
        raise LayoutError(problem)
    return entries
