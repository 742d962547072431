"""The report's pictures, drawn with ReportLab's own vector graphics: the timeline of window scores with the
thresholds (as the result page draws it), and a photo with a box per face.

Vector drawings rather than matplotlib images: sharp at any zoom, text that stays text, and no pyplot state shared
between the web server's threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.graphics.shapes import Image as DrawnImage
from reportlab.lib import colors

from ..naming import person_label, probability_text

FAKE_COLOUR = colors.HexColor("#c62f2f")
REAL_COLOUR = colors.HexColor("#19824a")
UNCERTAIN_COLOUR = colors.HexColor("#b7791f")
BAND_COLOUR = colors.HexColor("#f6efd9")
GRID_COLOUR = colors.HexColor("#e3e7ec")
MUTED_COLOUR = colors.HexColor("#5b6673")
UNSCORED_COLOUR = colors.HexColor("#b8c0cb")
PHOTO_MAX_SIDE = 1200  # pixels kept of a photo in the report: enough to print, not the 50-megapixel original


def verdict_colour(verdict: str | None) -> Any:
    return {"FAKE": FAKE_COLOUR, "REAL": REAL_COLOUR}.get(str(verdict), UNCERTAIN_COLOUR)


def band_colour(probability: float, thresholds: Mapping[str, Any]) -> Any:
    """decision.py's rule: FAKE at or above the FAKE threshold, REAL at or below the REAL one."""
    if probability >= float(thresholds["fake"]):
        return FAKE_COLOUR
    return REAL_COLOUR if probability <= float(thresholds["real"]) else UNCERTAIN_COLOUR


def timeline(result: Mapping[str, Any], width: float = 480, height: float = 170, font: str = "Helvetica") -> Drawing:
    """Each window's fake probability at its place in the video, thresholds dashed, the band between them shaded;
    windows without a scored face lie grey on the axis."""
    left, right, top, bottom = 34.0, 8.0, 8.0, 24.0
    duration = max(float((result.get("video") or {}).get("duration") or 0.0), 0.001)
    thresholds = result["thresholds"]

    def x(seconds: float) -> float:
        return left + (width - left - right) * min(max(seconds, 0.0), duration) / duration

    def y(probability: float) -> float:
        return bottom + (height - top - bottom) * probability

    drawing = Drawing(width, height)
    fake, real = float(thresholds["fake"]), float(thresholds["real"])
    drawing.add(Rect(left, y(real), width - left - right, y(fake) - y(real), fillColor=BAND_COLOUR, strokeColor=None))
    for p in (0.0, 0.5, 1.0):
        drawing.add(Line(left, y(p), width - right, y(p), strokeColor=GRID_COLOUR))
        drawing.add(String(left - 4, y(p) - 3, f"{p:.1f}", fontName=font, fontSize=7, textAnchor="end"))
    for name, value, colour, shift in (("FAKE", fake, FAKE_COLOUR, 2), ("REAL", real, REAL_COLOUR, -8)):
        drawing.add(Line(left, y(value), width - right, y(value), strokeColor=colour, strokeDashArray=[3, 3]))
        label = f"{name} {probability_text(value)}"
        drawing.add(
            String(
                width - right, y(value) + shift, label, fontName=font, fontSize=7, fillColor=colour, textAnchor="end"
            )
        )
    ticks = max(1, min(10, int(np.ceil(duration))))
    for i in range(ticks + 1):
        seconds = duration * i / ticks
        drawing.add(
            String(
                x(seconds), 8, f"{seconds:.1f}s", fontName=font, fontSize=7, fillColor=MUTED_COLOUR, textAnchor="middle"
            )
        )
    for window in result.get("windows") or []:
        x0 = x(float(window["start_time"]))
        x1 = max(x(float(window["end_time"])), x0 + 2)
        probability = window.get("fake_probability")
        if window.get("status") == "scored" and probability is not None:
            colour = band_colour(float(probability), thresholds)
            drawing.add(Rect(x0, y(float(probability)) - 3, x1 - x0, 6, fillColor=colour, strokeColor=None))
            drawing.add(
                String(
                    (x0 + x1) / 2,
                    y(float(probability)) + 5,
                    f"#{window['index']}",
                    fontName=font,
                    fontSize=6,
                    fillColor=MUTED_COLOUR,
                    textAnchor="middle",
                )
            )
        else:
            drawing.add(Rect(x0, y(0.0) - 2, x1 - x0, 4, fillColor=UNSCORED_COLOUR, strokeColor=None))
    return drawing


def photo_with_boxes(
    photo: np.ndarray, result: Mapping[str, Any], width: float = 480, max_height: float = 420, font: str = "Helvetica"
) -> Drawing:
    """The upright photo with each face's box, coloured and labelled by that face's verdict (as the result page)."""
    height_px, width_px = photo.shape[:2]
    scale = min(width / width_px, max_height / height_px)
    shown_w, shown_h = width_px * scale, height_px * scale
    picture = Image.fromarray(np.ascontiguousarray(photo))
    if max(picture.size) > PHOTO_MAX_SIDE:
        picture.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
    drawing = Drawing(shown_w, shown_h)
    drawing.add(DrawnImage(0, 0, shown_w, shown_h, picture))
    people = {person["person_id"]: person for person in result.get("people") or []}
    windows = result.get("windows") or []
    for track in windows[0]["tracks"] if windows else []:
        x0, y0, x1, y1 = (float(v) * scale for v in track["boxes"][0])
        person = people.get(track["person_id"]) or {}
        colour = verdict_colour(person.get("verdict"))
        drawing.add(Rect(x0, shown_h - y1, x1 - x0, y1 - y0, fillColor=None, strokeColor=colour, strokeWidth=2))
        probability = probability_text(track["fake_probability"])
        label = f"{person_label(result, track['person_id'])}: {person.get('verdict', '')} {probability}"
        drawing.add(
            String(x0 + 2, min(shown_h - y0 + 3, shown_h - 9), label, fontName=font, fontSize=8, fillColor=colour)
        )
    return drawing
