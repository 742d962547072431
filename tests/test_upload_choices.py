"""The upload form's plain choices: Quick / Standard / Thorough from short to long windows, whatever is active."""

from __future__ import annotations

from ml_app.upload_choices import plain_choices


def test_choices_are_named_from_short_to_long_windows_for_any_number_of_checkpoints():
    assert plain_choices({}) == []
    assert [c.label for c in plain_choices({20: "b", 10: "a", 40: "c"})] == [
        "Quick · 10 frames per window",
        "Standard · 20 frames per window",
        "Thorough · 40 frames per window",
    ]
    assert [c.name for c in plain_choices({1: "f", 10: "a"})] == ["Frame by frame", "Standard"]
    assert [c.name for c in plain_choices({10: "a", 20: "b"})] == ["Quick", "Thorough"]
    five = plain_choices({n: str(n) for n in (10, 20, 30, 40, 60)})
    assert [c.name for c in five] == ["Quick", "Standard 1", "Standard 2", "Standard 3", "Thorough"]
    assert all(c.explanation for c in five) and five[0].checkpoint == "10"
