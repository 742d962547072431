"""The PDF report of a stored analysis, for the site's and the API's report URLs: the Analysis' result, the file's
identity and its crops folder handed to the Django-free report (ml_app.detection.report), and the refusal for an
analysis that has no verdict to report yet (or ever)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.utils.http import content_disposition_header

from .detection.report import ReportSource, read_photo, render_report
from .detection.stages import Stage
from .models import Analysis
from .uploads import UploadRejected


def not_ready(analysis: Analysis) -> UploadRejected | None:
    """Why there is no report of ``analysis`` (409, with what to do), or None when there is one."""
    if analysis.status == Analysis.Status.DONE and analysis.result:
        return None
    if analysis.status == Analysis.Status.FAILED:
        message = (
            f"This analysis failed ({analysis.error_message or analysis.error_code or 'no reason recorded'}), so "
            "there is no verdict to report. Retry it from its result page."
        )
    else:
        message = (
            f"The analysis is not finished yet ({Stage.label_of(analysis.stage)}, {analysis.progress:.0f}%); the "
            "report can be made once it is done. Come back when its result page shows the verdict."
        )
    return UploadRejected("report_not_ready", message, status=409, field=None, record=False)


def report_source(analysis: Analysis) -> ReportSource:
    """What the report of a finished analysis is made from (the photo itself, for a photo's page with its boxes)."""
    photo = None
    if analysis.media == "image" and analysis.video_path.is_file():
        photo = read_photo(analysis.video_path, settings.MAX_IMAGE_PIXELS)
    return ReportSource(
        result=analysis.result or {},
        media_name=analysis.original_name,
        media_sha256=analysis.sha256,
        analysed_at=analysis.finished_at or analysis.created_at,
        crops_dir=analysis.crops_dir,
        photo=photo,
        analysis_id=str(analysis.pk),
        reused=analysis.reused_from_id is not None,
        origin=origin_rows(analysis),
    )


def origin_rows(analysis: Analysis) -> tuple[tuple[str, str], ...]:
    """Where a file fetched from a link came from, as the report's rows (none for an upload)."""
    if not analysis.source_url:
        return ()
    rows = [("Fetched from", analysis.source_url)]
    if analysis.final_url and analysis.final_url != analysis.source_url:
        rows.append(("File address", analysis.final_url))
    if analysis.source_title:
        rows.append(("Page title", analysis.source_title))
    if analysis.fetched_at:
        rows.append(("Fetched at", analysis.fetched_at.strftime("%Y-%m-%d %H:%M:%S UTC")))
    return tuple(rows)


def report_filename(analysis: Analysis) -> str:
    return f"analysis-{analysis.pk}.pdf"


def pdf_response(analysis: Analysis) -> HttpResponse:
    """The report of a finished analysis, to download under a name that carries the analysis' id."""
    response = HttpResponse(render_report(report_source(analysis)), content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, report_filename(analysis))
    return response
