"""The REST API: analyses (create, read, list, delete; each caller sees only their own) and active checkpoints."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from .. import analysis_report, jobs, submissions
from ..models import Analysis
from ..registry import active_checkpoints, active_ensembles
from .serializers import (
    ActiveCheckpointSerializer,
    ActiveEnsembleSerializer,
    AnalysisCreateSerializer,
    AnalysisSerializer,
    ErrorSerializer,
)

_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="no credentials, or a bad token"),
    429: OpenApiResponse(ErrorSerializer, description="too many requests"),
}
_NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="no analysis of yours has this id")}
_UPLOAD_ERRORS = {
    400: OpenApiResponse(
        ErrorSerializer,
        description="not a usable video or photo, an unknown sequence length, a form that cannot be read, or a link "
        "that is refused at once (not http(s), a refused address, a file and a link together, links switched off)",
    ),
    408: OpenApiResponse(ErrorSerializer, description="the body stalled or came in too slowly"),
    411: OpenApiResponse(ErrorSerializer, description="no Content-Length (a chunked upload)"),
    413: OpenApiResponse(ErrorSerializer, description="larger than the upload limit, or a photo of too many pixels"),
    415: OpenApiResponse(ErrorSerializer, description="neither a video nor a photo file type, or not a multipart body"),
    503: OpenApiResponse(
        ErrorSerializer,
        description="no checkpoint (for a photo: no frame model) is active, or the queue is full (then with "
        "Retry-After)",
    ),
}
_STATUSES = [choice for choice, _ in Analysis.Status.choices]
_VERDICTS = ["REAL", "FAKE", "INCONCLUSIVE"]


@extend_schema_view(
    list=extend_schema(
        summary="Your analyses, newest first",
        parameters=[
            OpenApiParameter("status", str, enum=_STATUSES, description="only analyses in this state"),
            OpenApiParameter("verdict", str, enum=_VERDICTS, description="only finished analyses with this verdict"),
        ],
        responses={
            200: AnalysisSerializer(many=True),
            400: OpenApiResponse(ErrorSerializer, description="an unknown status or verdict"),
            404: OpenApiResponse(ErrorSerializer, description="no such page"),
            **_ERRORS,
        },
    ),
    retrieve=extend_schema(
        summary="One analysis: status, stage and progress, and when done the full result",
        responses={200: AnalysisSerializer, **_ERRORS, **_NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete an analysis, its video and its face crops",
        responses={204: None, **_ERRORS, **_NOT_FOUND},
    ),
)
class AnalysisViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = AnalysisSerializer
    lookup_field = "pk"
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def initialize_request(self, request, *args, **kwargs) -> Request:
        # Before anything reads the body (authentication's CSRF check can): the streaming size limit.
        if request.method == "POST":
            submissions.prepare(request)
        return super().initialize_request(request, *args, **kwargs)

    def get_queryset(self):
        queryset = Analysis.objects.filter(owner=self.request.user).select_related("checkpoint")
        if self.action != "list":
            return queryset
        wanted_status = self.request.query_params.get("status")
        wanted_verdict = self.request.query_params.get("verdict")
        if wanted_status is not None and wanted_status not in _STATUSES:
            raise ValidationError({"status": [f"Choose one of: {', '.join(_STATUSES)}."]})
        if wanted_verdict is not None and wanted_verdict not in _VERDICTS:
            raise ValidationError({"verdict": [f"Choose one of: {', '.join(_VERDICTS)}."]})
        if wanted_status:
            queryset = queryset.filter(status=wanted_status)
        if wanted_verdict:
            queryset = queryset.filter(verdict=wanted_verdict)
        return queryset.order_by("-created_at")

    @extend_schema(
        summary="Upload a video or a photo for analysis, or send a link to one",
        description="Multipart form with `video` (a video, or a jpg/png/webp photo; a photo may also come as `image`) "
        "or `url` (an http(s) link to a video or photo, or to a page that shows one video; exactly one of a file or "
        "`url`; the worker fetches it in the stage `fetching`, and a failure to fetch is the analysis' `error`) "
        "and optionally `sequence_length` or `ensemble` (videos only: a photo is scored by the active frame model). "
        "Answers 202 at once: the analysis runs in the background; poll its `url` until `status` is `done` or "
        "`failed`.",
        request={"multipart/form-data": AnalysisCreateSerializer},
        responses={202: AnalysisSerializer, **_UPLOAD_ERRORS, **_ERRORS},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        # A refusal is an UploadRejected: errors.api_exception_handler answers it (the throttles ran before this).
        submissions.admit(request)  # the announced length and the queue, before the body is read
        analysis = submissions.submit(request)
        data = self.get_serializer(analysis).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        analysis = jobs.refresh_if_stale(self.get_object())
        return Response(self.get_serializer(analysis).data)

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # The report answers a PDF whatever the Accept header says (its errors stay JSON, the error shape).
        return super().perform_content_negotiation(request, force=force or self.action == "report")

    @extend_schema(
        summary="The analysis' report as a PDF (verdict, checkpoint, the file's sha256, timeline, people, limits)",
        operation_id="analyses_report",
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="the report"),
            409: OpenApiResponse(ErrorSerializer, description="the analysis is not finished, or it failed"),
            **_ERRORS,
            **_NOT_FOUND,
        },
    )
    def report(self, request: Request, *args, **kwargs) -> HttpResponse:
        analysis = self.get_object()
        refusal = analysis_report.not_ready(analysis)
        if refusal is not None:
            raise refusal  # answered in the error shape by errors.api_exception_handler
        return analysis_report.pdf_response(analysis)


class CheckpointViewSet(viewsets.GenericViewSet):
    serializer_class = ActiveCheckpointSerializer
    pagination_class = None

    @extend_schema(
        summary="The active checkpoint for each sequence length, with its metrics",
        responses={200: ActiveCheckpointSerializer(many=True), **_ERRORS},
    )
    def list(self, request: Request) -> Response:
        return Response(self.get_serializer(list(active_checkpoints().values()), many=True).data)


class EnsembleViewSet(viewsets.GenericViewSet):
    serializer_class = ActiveEnsembleSerializer
    pagination_class = None

    @extend_schema(
        summary="The active ensembles (several checkpoints whose calibrated answers are averaged) and their members",
        responses={200: ActiveEnsembleSerializer(many=True), **_ERRORS},
    )
    def list(self, request: Request) -> Response:
        return Response(self.get_serializer(list(active_ensembles().items()), many=True).data)
