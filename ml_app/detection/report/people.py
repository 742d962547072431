"""The people of a report: the summary table of everyone found, the table of windows, and one page per person with
their face crops, their window scores and (where the result has them) heat maps.

A video's people are linked across windows by face descriptor; a photo's faces are its people (one "window").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reportlab.lib.units import mm
from reportlab.platypus import Spacer, Table

from ..naming import is_photo, person_label
from . import wording
from .heatmaps import heatmap_flowables
from .layout import PAGE_WIDTH, grid, para, picture, strip_grid
from .source import ReportSource

THUMB = 34  # points: a face crop in a table row
MAX_ROWS = 24  # window rows on one person's page; the rest are counted, not listed
_WINDOW_STATUS = {
    "scored": "scored",
    "no_face": "no face found",
    "face_lost": "faces not visible in every frame",
    "video_ended": "the video ended",
}


def _p(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def shown_people(result: Mapping[str, Any], limit: int) -> list[Mapping[str, Any]]:
    """The people who get a page: everyone up to ``limit``, else the ``limit`` most suspicious, in their order."""
    everyone = list(result.get("people") or [])
    if len(everyone) <= limit:
        return everyone
    chosen = sorted(everyone, key=lambda p: -float(p.get("fake_probability") or 0.0))[:limit]
    return sorted(chosen, key=lambda p: int(p["person_id"]))


def summary(source: ReportSource, limit: int) -> list[Any]:
    """Everyone found, one row each, and which of them have a page."""
    result = source.result
    everyone = list(result.get("people") or [])
    heading = "The faces in the photo" if is_photo(result) else "The people found"
    if not everyone:
        nobody = "No face was found in the photo." if is_photo(result) else "No face was scored."
        return [para(heading, "h2"), para(nobody)]
    rows = [
        [
            person_label(result, int(p["person_id"])),
            p.get("verdict"),
            _p(p.get("fake_probability")),
            ", ".join(str(w) for w in p.get("windows") or []),
            f"{float(p.get('disagreement') or 0):.2f}",
        ]
        for p in everyone
    ]
    story: list[Any] = [para(heading, "h2"), grid(["who", "verdict", "fake probability", "windows", "spread"], rows)]
    shown = shown_people(result, limit)
    if len(shown) < len(everyone):
        left_out = [person_label(result, int(p["person_id"])) for p in everyone if p not in shown]
        story.append(
            para(
                f"Pages follow for the {len(shown)} most suspicious of {len(everyone)} people; {len(left_out)} more "
                f"were left out ({', '.join(left_out)}): their scores are in the table above."
            )
        )
    return story


def windows_table(result: Mapping[str, Any]) -> list[Any]:
    """Every window of the video: where it lies, what was found, its score."""
    rows = []
    for window in result.get("windows") or []:
        faces = ", ".join(
            f"{person_label(result, int(t['person_id']))}: {_p(t['fake_probability'])}"
            for t in window.get("tracks") or []
        )
        rows.append(
            [
                f"#{window['index']}",
                f"{float(window['start_time']):.2f}–{float(window['end_time']):.2f} s",
                f"{window['start_frame']}–{window['end_frame']}",
                _WINDOW_STATUS.get(str(window.get("status")), str(window.get("status"))),
                _p(window.get("fake_probability")),
                faces or f"{window.get('faces_found', 0)} face(s) seen",
            ]
        )
    if not rows:
        return []
    widths = [18 * mm, 26 * mm, 18 * mm, 34 * mm, 28 * mm, PAGE_WIDTH - 124 * mm]
    return [
        para("Windows", "h2"),
        grid(["window", "time", "frames", "status", "fake probability", "faces"], rows, widths),
    ]


def _appearances(result: Mapping[str, Any], person_id: int) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(window, track) for each window the person was scored in."""
    return [
        (window, track)
        for window in result.get("windows") or []
        for track in window.get("tracks") or []
        if int(track["person_id"]) == person_id
    ]


def _person_lines(result: Mapping[str, Any], person: Mapping[str, Any]) -> list[Any]:
    lines = [
        para(
            f"{person.get('verdict')}, fake probability {_p(person.get('fake_probability'))} "
            f"(raw {_p(person.get('raw_probability'))})"
        ),
    ]
    if not is_photo(result):
        probabilities = person.get("window_probabilities") or []
        spread = f"; from {min(probabilities):.2f} to {max(probabilities):.2f}" if len(probabilities) > 1 else ""
        lines.append(
            para(f"Seen in {len(probabilities)} window(s){spread}. A person's score is the mean of their windows.")
        )
    if person.get("reason") == "windows_disagree":
        lines.append(para("The windows disagree by 0.5 or more: conflicting evidence is never averaged into REAL."))
    elif person.get("verdict") == "INCONCLUSIVE":
        lines.append(para(f"Between the thresholds: {wording.thresholds_text(result)}."))
    return lines


def _rows(source: ReportSource, seen: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[list[Any]]:
    photo = is_photo(source.result)
    rows = []
    for window, track in seen[:MAX_ROWS]:
        files = source.track_files(int(window["index"]), int(track["track_id"]))
        thumb = picture(source.crop_file(files.get("thumb")), THUMB, THUMB) or "–"
        if photo:
            where = "({}, {})–({}, {})".format(*track["boxes"][0]) if track.get("boxes") else "–"
            rows.append([thumb, f"face {int(track['track_id']) + 1}", where])
        else:
            rows.append(
                [
                    thumb,
                    f"#{window['index']}",
                    f"{float(window['start_time']):.2f}–{float(window['end_time']):.2f} s",
                    str(track.get("filled_frames", 0)),
                ]
            )
        rows[-1] += [_p(track["fake_probability"]), _p(track.get("raw_probability"))]
    return rows


def _table(source: ReportSource, seen: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Any]:
    if is_photo(source.result):
        header = ["crop", "face", "box (pixels)", "fake probability", "raw score"]
        widths = [16 * mm, 22 * mm, 50 * mm, 30 * mm, PAGE_WIDTH - 118 * mm]
    else:
        header = ["crop", "window", "time", "filled frames", "fake probability", "raw score"]
        widths = [16 * mm, 18 * mm, 34 * mm, 26 * mm, 30 * mm, PAGE_WIDTH - 124 * mm]
    story: list[Any] = [grid(header, _rows(source, seen), widths)]
    if len(seen) > MAX_ROWS:
        story.append(
            para(f"{len(seen) - MAX_ROWS} more windows are not listed here; the analysis' JSON has them all.", "small")
        )
    return story


def _strip(source: ReportSource, seen: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Any]:
    """Every crop the network saw in the person's most suspicious window (a video's; a photo has one crop)."""
    if is_photo(source.result) or not seen:
        return []
    window, track = max(seen, key=lambda pair: float(pair[1]["fake_probability"]))
    files = source.track_files(int(window["index"]), int(track["track_id"]))
    found = strip_grid(source.crop_file(files.get("strip")), PAGE_WIDTH)
    if found is None:
        return []
    image, shown, total = found
    some = f"{shown} of its {total} frames" if shown < total else f"its {total} frames"
    caption = f"What the network saw in window #{window['index']}, the person's most suspicious ({some}):"
    return [para(caption, "small"), image]


def person_page(source: ReportSource, person: Mapping[str, Any], number: int, total: int) -> list[Any]:
    result = source.result
    person_id = int(person["person_id"])
    seen = _appearances(result, person_id)
    head: list[Any] = [
        para(person_label(result, person_id), "h2"),
        para(f"Person page {number} of {total}", "small"),
        *_person_lines(result, person),
    ]
    portrait = picture(source.person_thumbnail(person_id), 30 * mm, 30 * mm)
    if portrait is not None:
        head = [
            Table(
                [[portrait, head]],
                colWidths=[34 * mm, PAGE_WIDTH - 34 * mm],
                hAlign="LEFT",
                style=[("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)],
            )
        ]
    return [
        *head,
        Spacer(1, 6),
        *_table(source, seen),
        Spacer(1, 6),
        *_strip(source, seen),
        *heatmap_flowables(source, seen),
    ]


def person_pages(source: ReportSource, limit: int) -> list[list[Any]]:
    """One list of flowables per person shown (each is laid out to fit one page)."""
    shown = shown_people(source.result, limit)
    return [person_page(source, person, number, len(shown)) for number, person in enumerate(shown, 1)]
