"""A checkpoint's settings and figures (nested JSON) as readable tables for the admin, instead of raw JSON pages
long: nested mappings become nested tables, figures are rounded (shares as percentages), long lists are counted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

LIST_SHOWN = 8  # items of a list shown before the rest are counted
SHARES = ("accuracy", "precision", "recall", "fpr", "fnr", "tpr", "share", "rate")  # figures read as percentages


def figure(key: str, value: float) -> str:
    """0.6176470588235294 as '61.8%' for an accuracy-like key, else at four significant digits."""
    if any(word in key.lower() for word in SHARES) and 0.0 <= value <= 1.0:
        return f"{value:.1%}"
    return f"{value:.4g}"


def _cell(key: str, value: Any) -> SafeString | str:
    if isinstance(value, Mapping):
        return settings_table(value) if value else "–"
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, float):
        return figure(key, value)
    if isinstance(value, list):
        if value and all(isinstance(item, Mapping) for item in value):
            return format_html_join("", "{}", ((settings_table(item),) for item in value[:LIST_SHOWN])) + (
                format_html("<p>… and {} more</p>", len(value) - LIST_SHOWN) if len(value) > LIST_SHOWN else ""
            )
        shown = ", ".join(str(_cell(key, item)) for item in value[:LIST_SHOWN])
        return shown + (
            f" … and {len(value) - LIST_SHOWN} more ({len(value)} in all)" if len(value) > LIST_SHOWN else ""
        )
    return str(value)


def settings_table(value: Mapping[str, Any] | None) -> SafeString:
    """An HTML table of ``value``'s keys and values (escaped), nested mappings as nested tables."""
    if not value:
        return mark_safe("–")
    rows = format_html_join(
        "",
        '<tr><th scope="row">{}</th><td>{}</td></tr>',
        ((str(k).replace("_", " "), _cell(str(k), v)) for k, v in value.items()),
    )
    return format_html('<table class="settings-table">{}</table>', rows)
