"""The PDF report of one analysis (ReportLab; no Django): ``source`` (what it is made from), ``wording`` (what it
says), ``charts`` (timeline, photo with boxes), ``layout`` (fonts, tables), ``people`` (summary and person pages),
``heatmaps``, ``provenance`` and ``document`` (the pages in order, and the file)."""

from .document import MAX_PEOPLE, render_report, write_report
from .source import ReportSource, read_photo, source_for_file

__all__ = ["MAX_PEOPLE", "ReportSource", "read_photo", "render_report", "source_for_file", "write_report"]
