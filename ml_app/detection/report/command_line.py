"""The report of a file analysed here and now (``analyze_video --report``, ``analyze_image --report``): the crops
come from the result in memory, written to the --save-crops folder or to a scratch folder for as long as the
report takes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..defaults import DEFAULT_MAX_PIXELS
from ..results import AnalysisResult
from .document import write_report
from .source import source_for_file


def unwritable(path: str | os.PathLike) -> str | None:
    """Why a report cannot be written to ``path`` (checked before an analysis is spent on it); None when it can."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        return f"{path} is a folder; give the report's file name, e.g. {path / 'report.pdf'}."
    if not folder.is_dir():
        return f"The folder {folder} does not exist; create it first or write the report elsewhere."
    if not os.access(folder, os.W_OK):
        return f"The folder {folder} cannot be written to (permission denied)."
    return None


def write_file_report(
    result: AnalysisResult,
    data: Mapping[str, Any],
    media_path: str | os.PathLike,
    path: str | os.PathLike,
    crops_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Path:
    """Write the report of ``result`` (``data`` is what the command stores and prints: its dict, provenance
    included). Its crops are those saved in ``crops_dir``, or written for the report and removed after it."""
    with tempfile.TemporaryDirectory(prefix="report-crops-") as scratch:
        folder = Path(crops_dir) if crops_dir else Path(scratch)
        files = result.crop_files if crops_dir else result.save_crops(folder)
        source = source_for_file({**data, "crop_files": files}, media_path, folder, max_pixels=max_pixels)
        return write_report(source, path)
