"""Where a file submitted as a link came from, and how far its fetch has got: the ``source`` and ``stage_label`` of an
analysis as the API and the site describe it (ml_app.api.serializers)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..detection.stages import Stage
from ..models import Analysis

URL_HELP = (
    "instead of a file: an http(s) link to a video or photo, or to a web page that shows one (resolved with yt-dlp). "
    "Exactly one of a file or url. The worker fetches it (stage 'fetching') under the upload's size and duration "
    "limits; links to private, loopback, link-local and cloud-metadata addresses are refused."
)


class SourceSerializer(serializers.Serializer):
    """Where a file submitted as a link came from."""

    url = serializers.CharField(help_text="the link as submitted")
    final_url = serializers.CharField(help_text="the file's address after redirects (and after the page)")
    title = serializers.CharField(help_text="the title of the page the video was found on, or empty")
    fetched_at = serializers.DateTimeField(allow_null=True)
    bytes_received = serializers.IntegerField(help_text="while fetching: so far; then the file's size")
    bytes_total = serializers.IntegerField(allow_null=True, help_text="as announced by the server, if it did")


class SourceField:  # AnalysisSerializer's ``source`` (no docstring: the schema would take it as Analysis')
    @extend_schema_field(SourceSerializer(allow_null=True))
    def get_source(self, analysis: Analysis) -> dict | None:
        return describe_source(analysis)


def describe_source(analysis: Analysis) -> dict | None:
    """The analysis' ``source``; None for an uploaded file."""
    if not analysis.source_url:
        return None
    return SourceSerializer(
        {
            "url": analysis.source_url,
            "final_url": analysis.final_url,
            "title": analysis.source_title,
            "fetched_at": analysis.fetched_at,
            "bytes_received": analysis.size_bytes or analysis.fetched_bytes,
            "bytes_total": analysis.fetch_total_bytes,
        }
    ).data


def stage_label(analysis: Analysis) -> str:
    """The stage in words; while fetching, with the megabytes received so far (and of how many, when known)."""
    label = Stage.label_of(analysis.stage)
    if analysis.stage == Stage.FETCHING and analysis.fetched_bytes:
        done, total = analysis.fetched_bytes / 1e6, analysis.fetch_total_bytes
        return f"{label}: {done:.1f} of {total / 1e6:.1f} MB" if total else f"{label}: {done:.1f} MB"
    return label
