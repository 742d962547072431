"""Heat maps on a person's page, where the result has them (Grad-CAM, ``results.Heatmap``): for each window of the
person, the crop of the frame that pushed the score hardest towards FAKE and the map over it, with what a heat map
is (the pixels that moved the network's score most), never called "the fake part". A result without heat maps
(not asked for, made before they existed) gives nothing here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reportlab.platypus import Table

from ..naming import person_label
from .layout import PAGE_WIDTH, para, picture
from .source import ReportSource

PAIRS_PER_ROW = 3
SIZE = 56  # points, each image of a pair


def _video_frames(result: Mapping[str, Any]) -> dict[tuple[int, int], int]:
    """(window, track) -> the video frame its heat map was made of."""
    maps = (result.get("heatmaps") or {}).get("maps") or []
    return {(int(m["window"]), int(m["track_id"])): int(m["video_frame"]) for m in maps if "video_frame" in m}


def heatmap_flowables(source: ReportSource, seen: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Any]:
    """A grid of (crop, heat map) pairs for the person's windows; nothing when the result has none."""
    frames = _video_frames(source.result)
    cells = []
    for window, track in seen:
        key = (int(window["index"]), int(track["track_id"]))
        files = source.track_files(*key)
        overlay = picture(source.crop_file(files.get("heatmap")), SIZE, SIZE)
        if overlay is None:
            continue
        crop = picture(source.crop_file(files.get("heatmap_crop")), SIZE, SIZE) or ""
        frame = f", frame {frames[key]}" if key in frames else ""
        caption = para(f"{person_label(source.result, int(track['person_id']))}, window #{key[0]}{frame}", "small")
        cells.append(Table([[crop, overlay], [caption, ""]], style=[("SPAN", (0, 1), (1, 1))]))
    if not cells:
        return []
    rows = [cells[i : i + PAIRS_PER_ROW] for i in range(0, len(cells), PAIRS_PER_ROW)]
    rows[-1] += [""] * (PAIRS_PER_ROW - len(rows[-1]))
    return [
        para("Heat maps", "h2"),
        para(
            "For each window, the crop of the frame that pushed the score hardest towards FAKE, and the same crop "
            "with the pixels that pushed it most shown bright. A heat map explains the network, not the video: a "
            "bright region is not proof of an edit, and a dark one is not proof of none.",
            "small",
        ),
        Table(rows, colWidths=[PAGE_WIDTH / PAIRS_PER_ROW] * PAIRS_PER_ROW, hAlign="LEFT"),
    ]
