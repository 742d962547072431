"""The report as a PDF (ReportLab's platypus): a title page with the verdict and why, the checkpoint and the media,
the timeline (or the photo with its boxes), one page per person (at most ``MAX_PEOPLE``), Content Credentials when
the result carries them, and the limits of the method.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepInFrame, KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer

from ..files import atomic_write
from . import charts, people, wording
from .layout import FRAME_HEIGHT, MARGINS, PAGE_WIDTH, fonts, grid, para, rows_table, styles
from .provenance import provenance_rows
from .source import ReportSource

MAX_PEOPLE = 10  # person pages in one report; the summary table lists everyone


def _when(moment: dt.datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def title_page(source: ReportSource) -> list[Any]:
    result = source.result
    verdict = str(result.get("verdict"))
    story: list[Any] = [para("Deepfake analysis report", "h1")]
    identity = [("File", source.media_name), *source.origin, ("Analysed at", _when(source.analysed_at))]
    if source.analysis_id:
        identity.insert(1, ("Analysis", source.analysis_id))
    if source.reused:
        identity.append(("Result", "reused from an earlier analysis of the same file with the same checkpoint"))
    identity.append(("Report made at", _when(dt.datetime.now(dt.UTC))))
    story += [rows_table(identity), Spacer(1, 10)]
    style = ParagraphStyle("this-verdict", parent=styles()["verdict"], textColor=charts.verdict_colour(verdict))
    story.append(Paragraph(escape(verdict), style))
    story.append(para(wording.verdict_explanation(result)))
    if (result.get("checkpoint") or {}).get("untrained"):
        story.append(para(wording.UNTRAINED, "notice"))
    story.append(rows_table(wording.probability_rows(result)))
    for warning in result.get("warnings") or []:
        story.append(para(f"Warning: {warning}", "small"))
    story += people.summary(source, MAX_PEOPLE)
    story += _ensemble(result.get("ensemble"))
    return story


def _ensemble(ensemble: Mapping[str, Any] | None) -> list[Any]:
    """Each member's answer; the sha256s below the table (64 characters do not fit a column)."""
    if not ensemble:
        return []
    members = ensemble.get("members") or []
    rows = [
        [
            m.get("name"),
            m.get("sequence_length"),
            m.get("verdict"),
            "–" if m.get("fake_probability") is None else f"{float(m['fake_probability']):.3f}",
            m.get("windows_scored", "–"),
        ]
        for m in members
    ]
    return [
        para("The checkpoints of the ensemble", "h2"),
        para(
            f"The verdict is the {ensemble.get('combine', 'mean')} of these checkpoints' answers (ensemble "
            f"'{ensemble.get('name')}'); the windows and people of this report are {ensemble.get('evidence_from')}'s."
        ),
        grid(["checkpoint", "frames", "verdict", "fake probability", "windows scored"], rows),
        Spacer(1, 4),
        rows_table([(f"sha256 of {m.get('name')}", str(m.get("sha256"))) for m in members]),
    ]


def evidence_pages(source: ReportSource) -> list[Any]:
    """The checkpoint, the media, and the timeline or the photo."""
    result = source.result
    photo = wording.is_photo(result)
    story: list[Any] = [para("The checkpoint that gave the verdict", "h2")]
    story.append(rows_table(wording.checkpoint_rows(result.get("checkpoint") or {})))
    story.append(para("The photo" if photo else "The video", "h2"))
    story.append(rows_table(wording.media_rows(result, source.media_name, source.media_sha256)))
    timings = result.get("timings") or {}
    spent = ", ".join(
        f"{stage} {float(seconds):.2f} s"
        for stage, seconds in timings.items()
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    )
    if spent:
        story.append(para(f"Time taken: {spent}.", "small"))
    if photo:
        if source.photo is not None:
            shown = charts.photo_with_boxes(source.photo, result, PAGE_WIDTH, 110 * mm, fonts()[0])
        else:
            shown = para("The photo is no longer stored; its faces' boxes are listed on their pages.", "small")
        return [*story, KeepTogether([para("The faces in the photo", "h2"), shown])]
    timeline = [
        para("Fake probability over the video", "h2"),
        para(
            "Each bar is a window of consecutive frames at its place in the video, at the height of its most "
            "suspicious face's fake probability. The shaded band between the dashed REAL and FAKE thresholds is "
            "where the evidence is not enough either way; grey bars on the axis are windows without a face "
            "followed through all their frames.",
            "small",
        ),
        charts.timeline(result, PAGE_WIDTH, 60 * mm, fonts()[0]),
    ]
    story += [KeepTogether(timeline), *people.windows_table(result)]
    return story


def provenance_section(result: Mapping[str, Any]) -> list[Any]:
    """Content Credentials (C2PA), when the result carries them: a separate check, not the network's verdict."""
    provenance = result.get("provenance")
    if not provenance:
        return []
    return [
        para("Content Credentials (separate from the verdict)", "h2"),
        para(
            "What the file's signed metadata says about where it comes from. This is not the network's verdict "
            "and does not change it.",
            "small",
        ),
        rows_table(provenance_rows(provenance)),
    ]


def story_of(source: ReportSource) -> list[Any]:
    story = title_page(source)
    story += [PageBreak(), *evidence_pages(source)]
    for page in people.person_pages(source, MAX_PEOPLE):
        story += [PageBreak(), KeepInFrame(PAGE_WIDTH, FRAME_HEIGHT - 2, page, mode="shrink")]
    story += [PageBreak(), *provenance_section(source.result), para("The limits of the method", "h2")]
    story += [para(text) for text in wording.limits(source.result)]
    return story


def render_report(source: ReportSource) -> bytes:
    """The whole report as PDF bytes."""
    buffer = io.BytesIO()
    regular, _ = fonts()
    footer = f"Deepfake analysis report · {source.media_name}"

    def on_page(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.setFillColor(charts.MUTED_COLOUR)
        canvas.drawString(18 * mm, 10 * mm, footer[:110])
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {document.page}")
        canvas.restoreState()

    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGINS[0],
        rightMargin=MARGINS[1],
        topMargin=MARGINS[2],
        bottomMargin=MARGINS[3],
        title=f"Deepfake analysis report: {source.media_name}",
        author="Deepfake detector",
        subject=f"Verdict {source.result.get('verdict')}",
        creator="ml_app.detection.report",
    )
    document.build(story_of(source), onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()


def write_report(source: ReportSource, path: str | os.PathLike) -> Path:
    """Write the report atomically (a reader never sees half a PDF); OSError when the folder cannot be written."""
    data = render_report(source)
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))
