"""How people, faces and windows are named wherever a person reads a result: the result page, the PDF, the API's
summary, heat map captions and reasons. One home, so the reason that speaks of "Person 2" and the card labelled
"Person 2" are the same person.

A result stores ``person_id`` from 0 in order of appearance (``decision.link_people``; a photo's faces in the
detector's order); people read them from 1. A photo's people are its faces.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_photo(result: Mapping[str, Any]) -> bool:
    return (result.get("video") or {}).get("kind") == "image"


def person_number(person_id: int) -> int:
    """The number a person reads: 1 for the first person (or face) to appear."""
    return int(person_id) + 1


def person_label(result: Mapping[str, Any], person_id: int) -> str:
    """'Person 2' in a video, 'Face 2' in a photo."""
    return f"{'Face' if is_photo(result) else 'Person'} {person_number(person_id)}"


def people_count(result: Mapping[str, Any], count: int) -> str:
    """'1 person', '3 people', 'no face', '2 faces'."""
    if count == 0:
        return "no face"
    if is_photo(result):
        return f"{count} face{'s' if count != 1 else ''}"
    return f"{count} {'person' if count == 1 else 'people'}"


def window_label(index: int) -> str:
    """A window as the page and the PDF list it."""
    return f"#{int(index)}"


def probability_text(value: Any) -> str:
    """A probability or a threshold as every page writes it: three decimals, so a score just below a threshold
    never reads as equal to it."""
    return "–" if value is None else f"{float(value):.3f}"
