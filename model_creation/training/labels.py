"""Reading REAL/FAKE labels written as words or numbers, and checking numbers against the paths they label.

Words (``REAL``/``FAKE``, any case) mean what they say. Numbers follow the project's training guide: **0 = REAL,
1 = FAKE** (the positive class is the fake one, as in DFDC-style 0/1 columns and most label files written today).
Files written the other way (``1`` = real, as the original app's class indices had it) are read with
``one_means="REAL"`` (``--one-means REAL``). Datasets with a convention of their own keep it whatever the flag says:
Kaggle's 140k faces (label 1 = real, ``label_str`` preferred) in ``layouts.faces140k``; Celeb-DF's test list, which
writes 1 for real, is only read for its split (``layouts.celebdf``: the folders give the labels).

Numbers read the wrong way round flip every label without a sound, so :func:`numeric_label_problem` compares them
with the class a row's path names (a ``real`` or ``fake`` folder, any case): when most disagree the file was written
in the other convention, when some disagree it is inconsistent, and either way it is refused with the rows to look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

LABELS = ("REAL", "FAKE")
OneMeans = Literal["REAL", "FAKE"]
DEFAULT_ONE_MEANS: OneMeans = "FAKE"  # 0 = REAL, 1 = FAKE, as the training guide writes them
_NUMBERS = ("0", "1", "0.0", "1.0")
_SHOWN = 5  # contradicting rows named in a refusal

CONVENTIONS = (
    "0 = REAL, 1 = FAKE (the default, as the training guide writes them) or --one-means REAL for 1 = REAL, 0 = FAKE"
)


def is_numeric_label(value: str) -> bool:
    return value.strip() in _NUMBERS


def parse_label(value: str, one_means: OneMeans = DEFAULT_ONE_MEANS) -> str | None:
    """``"REAL"``/``"FAKE"`` for a word or 0/1 label, None when ``value`` is not a label at all."""
    text = value.strip().upper()
    if text in LABELS:
        return text
    if text in _NUMBERS:
        other = "REAL" if one_means == "FAKE" else "FAKE"
        return one_means if text.startswith("1") else other
    return None


def path_class(path: str) -> str | None:
    """The class a path names by a ``real`` or ``fake`` folder (the first one, any case), None when it names none."""
    for part in PurePosixPath(path.replace("\\", "/")).parts[:-1]:
        if part.lower() in ("real", "fake"):
            return part.upper()
    return None


@dataclass(frozen=True)
class LabelledRow:
    """One row of a label file: where it is, the path it labels, what it said and what that was read as."""

    line: int
    path: str
    raw: str
    label: str


def numeric_label_problem(source: str, rows: Sequence[LabelledRow], one_means: OneMeans) -> str | None:
    """Why numeric labels that contradict the class their paths name cannot be used (a layout refuses the file with
    it), None when none does: most of them contradict (the file uses the other convention) or some (the file is
    inconsistent). Rows with words, or whose path names no class, are never questioned."""
    named = [row for row in rows if is_numeric_label(row.raw) and path_class(row.path)]
    wrong = [row for row in named if path_class(row.path) != row.label]
    if not wrong:
        return None
    reading = "0 = REAL, 1 = FAKE (the default)" if one_means == "FAKE" else "1 = REAL, 0 = FAKE (--one-means REAL)"
    shown = "; ".join(f"line {row.line}: {row.path},{row.raw.strip()}" for row in wrong[:_SHOWN])
    more = f" and {len(wrong) - _SHOWN} more" if len(wrong) > _SHOWN else ""
    if 2 * len(wrong) > len(named):
        other = "--one-means REAL" if one_means == "FAKE" else "the default (drop --one-means REAL)"
        return (
            f"'{source}': read as {reading}, the numeric labels of {len(wrong)} of the {len(named)} rows whose path "
            f"names a real/ or fake/ folder contradict it ({shown}{more}): the file seems to use the other "
            f"convention. Numbers are read as {CONVENTIONS}; pass {other}, or write REAL/FAKE."
        )
    return (
        f"'{source}': read as {reading}, most numeric labels agree with their real/ or fake/ folder but "
        f"{len(wrong)} of {len(named)} contradict it: {shown}{more}. Fix those rows (or write REAL/FAKE); numbers "
        f"are read as {CONVENTIONS}."
    )
