"""What a report is made from: one analysis' result dict, the analysed file's identity, when it was analysed, and
where its face crops lie. The site fills it from an Analysis (ml_app.analysis_report), the command line from the
file it just analysed (:func:`source_for_file`); nothing here needs a database.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..defaults import DEFAULT_MAX_PIXELS
from ..errors import ImageError
from ..files import file_sha256
from ..images import is_image_name, read_image

_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # what save_crops writes; anything else is not looked up


@dataclass(frozen=True)
class ReportSource:
    """One analysis, ready to be reported."""

    result: Mapping[str, Any]  # AnalysisResult.to_dict(), as stored on the Analysis
    media_name: str  # the file's name as the person who analysed it knows it
    media_sha256: str
    analysed_at: dt.datetime
    crops_dir: Path | None = None  # where save_crops wrote the files named in result["crop_files"]
    photo: np.ndarray | None = None  # a photo's upright RGB pixels, for the page with its boxes
    analysis_id: str | None = None
    reused: bool = False  # the site reused an earlier analysis of the same file with the same checkpoint
    origin: tuple[tuple[str, str], ...] = ()  # for a file fetched from a link: (label, value) rows of where from

    def crop_file(self, name: Any) -> Path | None:
        """A file save_crops wrote, or None when there is none (no crops kept, deleted, or an odd name)."""
        if self.crops_dir is None or not isinstance(name, str) or not _FILE_NAME.match(name):
            return None
        path = self.crops_dir / name
        return path if path.is_file() else None

    def person_thumbnail(self, person_id: int) -> Path | None:
        people = (self.result.get("crop_files") or {}).get("people") or {}
        return self.crop_file(people.get(str(person_id)))

    def track_files(self, window_index: int, track_id: int) -> Mapping[str, Any]:
        """The files of one face in one window: ``thumb`` and ``strip`` (and whatever else save_crops records)."""
        windows = (self.result.get("crop_files") or {}).get("windows") or {}
        found = (windows.get(str(window_index)) or {}).get(str(track_id))
        return found if isinstance(found, Mapping) else {}


def read_photo(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """A photo's upright pixels through the project's one photo reader; None when it cannot be read any more (the
    report then goes without the picture rather than failing)."""
    try:
        return read_image(path, max_pixels)[0]
    except ImageError:
        return None


def source_for_file(
    result: Mapping[str, Any],
    path: str | os.PathLike,
    crops_dir: str | os.PathLike | None = None,
    analysed_at: dt.datetime | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ReportSource:
    """The report of a file analysed here and now (the command line): its sha256 is computed from the file."""
    path = Path(path)
    return ReportSource(
        result=result,
        media_name=path.name,
        media_sha256=file_sha256(path),
        analysed_at=analysed_at or dt.datetime.now(dt.UTC),
        crops_dir=Path(crops_dir) if crops_dir is not None else None,
        photo=read_photo(path, max_pixels) if is_image_name(path.name) else None,
    )
