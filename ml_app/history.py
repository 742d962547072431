"""My analyses: a signed-in user's own analyses, newest first, each with its verdict, a face thumbnail and a delete
button. Anyone else's analyses never appear here (an analysis is otherwise reached only through its UUID)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from .detection.summary import summarize
from .models import Analysis

PAGE_SIZE = 20


def _thumbnail(analysis: Analysis) -> str | None:
    """The most suspicious person's face, else the first face found; None before a result or without a face."""
    result = analysis.result or {}
    files = (result.get("crop_files") or {}).get("people") or {}
    people = sorted(result.get("people") or [], key=lambda p: -float(p.get("fake_probability") or 0.0))
    for person in people:
        name = files.get(str(person["person_id"]))
        if name:
            return reverse("ml_app:analysis-crop", args=[analysis.pk, name])
    return None


def _row(analysis: Analysis) -> dict:
    done = analysis.status == Analysis.Status.DONE and bool(analysis.result)
    return {
        "analysis": analysis,
        "verdict": analysis.verdict if done else "",
        "headline": summarize(analysis.result)["headline"] if done else "",
        "thumbnail": _thumbnail(analysis) if done else None,
    }


@require_GET
@login_required
def my_analyses(request: HttpRequest) -> HttpResponse:
    owned = Analysis.objects.filter(owner=request.user).order_by("-created_at")
    page = Paginator(owned, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [_row(analysis) for analysis in page.object_list]
    response = render(request, "ml_app/my_analyses.html", {"rows": rows, "page": page})
    response["Cache-Control"] = "private, no-store"
    return response
