"""A property-based run over the OpenAPI schema (schemathesis): generated requests to every operation, with a valid
token, must never get a 5xx or a response that breaks the schema. Bounded so that CI stays quick:
API_FUZZ_EXAMPLES (default 25) examples per operation."""

from __future__ import annotations

import os

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import REPO

EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
_COMMITTED = yaml.safe_load((REPO / "ml_app" / "api" / "openapi.yaml").read_text())
OPERATIONS = [(path, method.upper()) for path, item in _COMMITTED["paths"].items() for method in item]

# The WSGI handler closes database connections after each request, as in production: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_no_server_errors_and_responses_match_the_schema(path, method, active_frame_checkpoint, django_user_model):
    from django.core.cache import cache
    from django.core.wsgi import get_wsgi_application

    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operation = schema[path][method]
    token = Token.objects.create(user=django_user_model.objects.create_user("fuzzer")).key
    headers = {"Authorization": f"Token {token}", "Host": "localhost"}
    statuses: list[int] = []

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        cache.clear()  # throttling has its own tests; here it would only cut the run short
        statuses.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    run()
    assert statuses, "examples were generated and sent"
