"""The report's typography and building blocks: fonts, paragraph styles, tables of rows, grids and pictures.

Text is set in DejaVu Sans, the TrueType font matplotlib ships, so that any file name or message prints (the PDF's
standard fonts know only Latin-1); it is embedded, so the text can be searched and copied.
"""

from __future__ import annotations

import functools
import importlib.util
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.platypus import Image, Paragraph, Table, TableStyle

from . import charts

MARGINS = (18 * mm, 18 * mm, 18 * mm, 22 * mm)  # left, right, top, bottom
FRAME_PADDING = 6  # points, platypus' default on each side of the frame
PAGE_WIDTH = A4[0] - MARGINS[0] - MARGINS[1] - 2 * FRAME_PADDING  # what a flowable may fill
FRAME_HEIGHT = A4[1] - MARGINS[2] - MARGINS[3] - 2 * FRAME_PADDING


@functools.cache
def fonts() -> tuple[str, str]:
    """(regular, bold): DejaVu Sans from matplotlib's data, else the standard Helvetica."""
    spec = importlib.util.find_spec("matplotlib")
    folder = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" if spec and spec.origin else None
    try:
        if folder is None:
            raise FileNotFoundError("matplotlib is not installed")
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
    except (OSError, TTFError):
        return "Helvetica", "Helvetica-Bold"
    return "DejaVuSans", "DejaVuSans-Bold"


@functools.cache
def styles() -> dict[str, ParagraphStyle]:
    regular, bold = fonts()
    base = ParagraphStyle("body", fontName=regular, fontSize=9, leading=12, spaceAfter=4)
    return {
        "body": base,
        "small": ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5, textColor=charts.MUTED_COLOUR),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8, leading=10, spaceAfter=0),
        "label": ParagraphStyle("label", parent=base, fontName=bold, fontSize=8, leading=10, spaceAfter=0),
        "h1": ParagraphStyle("h1", parent=base, fontName=bold, fontSize=18, leading=22, spaceAfter=8),
        "h2": ParagraphStyle("h2", parent=base, fontName=bold, fontSize=13, leading=16, spaceBefore=8, spaceAfter=6),
        "verdict": ParagraphStyle("verdict", parent=base, fontName=bold, fontSize=30, leading=36, spaceAfter=6),
        "notice": ParagraphStyle(
            "notice",
            parent=base,
            fontName=bold,
            textColor=charts.FAKE_COLOUR,
            borderColor=charts.FAKE_COLOUR,
            borderWidth=1,
            borderPadding=5,
            spaceBefore=6,
            spaceAfter=10,
        ),
    }


def para(text: Any, style: str = "body") -> Paragraph:
    """A paragraph of plain text (escaped: file names and messages are not markup)."""
    return Paragraph(escape(str(text)), styles()[style])


def rows_table(rows: Sequence[tuple[str, str]], label_width: float = 42 * mm) -> Table:
    """Label and value, one per row, values wrapped."""
    data = [[para(label, "label"), para(value, "cell")] for label, value in rows]
    table = Table(data, colWidths=[label_width, PAGE_WIDTH - label_width], hAlign="LEFT")
    table.setStyle(_GRID)
    return table


def grid(header: Sequence[str], body: Sequence[Sequence[Any]], widths: Sequence[float] | None = None) -> Table:
    """A table with a header row; cells that are not flowables are set as wrapped text."""
    data = [[para(name, "label") for name in header]]
    data += [[cell if hasattr(cell, "wrap") else para(cell, "cell") for cell in row] for row in body]
    table = Table(data, colWidths=widths, hAlign="LEFT", repeatRows=1)
    table.setStyle(TableStyle([*_GRID.getCommands(), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef1f5"))]))
    return table


_GRID = TableStyle(
    [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, charts.GRID_COLOUR),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
)


def strip_grid(path: Path | None, width: float, per_row: int = 10, most: int = 20) -> tuple[Image, int, int] | None:
    """A strip of square crops side by side (what save_crops writes) as rows of ``per_row``, at most ``most`` of
    them spread evenly over the strip: (the image, crops shown, crops in the strip); None without a file."""
    if path is None:
        return None
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as opened:
            strip = opened.convert("RGB")
    except OSError:
        return None
    side = strip.height
    total = max(1, strip.width // max(side, 1))
    chosen = sorted({round(i * (total - 1) / max(min(most, total) - 1, 1)) for i in range(min(most, total))})
    columns = min(per_row, len(chosen))
    rows = -(-len(chosen) // columns)
    grid = PILImage.new("RGB", (columns * side, rows * side), "white")
    for place, index in enumerate(chosen):
        crop = strip.crop((index * side, 0, (index + 1) * side, side))
        grid.paste(crop, ((place % columns) * side, (place // columns) * side))
    buffer = io.BytesIO()
    grid.save(buffer, "JPEG", quality=90)
    buffer.seek(0)
    cell = width / per_row
    return Image(buffer, width=columns * cell, height=rows * cell), len(chosen), total


def picture(path: Path | None, width: float, height: float | None = None) -> Image | None:
    """An image file scaled to ``width`` (keeping its shape unless ``height`` is given); None without a file."""
    if path is None:
        return None
    try:
        if height is None:
            from PIL import Image as PILImage

            with PILImage.open(path) as opened:
                height = width * opened.height / max(opened.width, 1)
        return Image(str(path), width=width, height=height)
    except OSError:
        return None
