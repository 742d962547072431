"""Reading REAL/FAKE labels written as words or numbers.

Numeric labels are ambiguous: the original app's metadata file (``file,label``) held REAL/FAKE words and its code
turned them into class indices 0 = FAKE, 1 = REAL; Celeb-DF's List_of_testing_videos.txt also writes 1 for real.
So ``1`` means REAL unless the caller says otherwise (``one_means="FAKE"``, as in DFDC-style 0/1 columns).
"""

from __future__ import annotations

from typing import Literal

LABELS = ("REAL", "FAKE")
OneMeans = Literal["REAL", "FAKE"]


def parse_label(value: str, one_means: OneMeans = "REAL") -> str | None:
    """``"REAL"``/``"FAKE"`` for a word or 0/1 label, None when ``value`` is not a label at all."""
    text = value.strip().upper()
    if text in LABELS:
        return text
    if text in ("0", "1", "0.0", "1.0"):
        is_one = text.startswith("1")
        other = "FAKE" if one_means == "REAL" else "REAL"
        return one_means if is_one else other
    return None
