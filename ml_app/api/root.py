"""/api/v1/: the API's entry points and where its documentation is, so the bare address answers instead of a 404."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class ApiRoot(APIView):
    """Lists the entry points; open to everyone (each entry point checks its own token)."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        absolute = request.build_absolute_uri
        return Response(
            {
                "analyses": absolute(reverse("api:analysis-list")),
                "checkpoints": absolute(reverse("api:checkpoint-list")),
                "ensembles": absolute(reverse("api:ensemble-list")),
                "schema": absolute(reverse("api-schema")),
                "docs": absolute(reverse("api-docs")),
                "authentication": "Authorization: Token <key>",
            }
        )
