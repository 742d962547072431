"""Who may open an analysis on the site: anyone with its address, unless it is private, then only its owner.
A private analysis answers 404 to everyone else (the same as no analysis: its existence is not revealed)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from .models import Analysis


def is_owner(request: HttpRequest, analysis: Analysis) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.is_authenticated and analysis.owner_id == user.pk


def may_open(request: HttpRequest, analysis: Analysis) -> bool:
    return not analysis.private or is_owner(request, analysis)


@require_POST
def set_privacy(request: HttpRequest, analysis_id) -> HttpResponse:
    """The owner makes their analysis private (``private=on``) or reachable by its address again."""
    analysis = get_object_or_404(Analysis, pk=analysis_id)
    if not is_owner(request, analysis):
        if not may_open(request, analysis):
            raise Http404("no such analysis")  # the same 404 as for no analysis
        messages.error(request, "Only the person who uploaded it can change who may open this analysis.")
        return redirect("ml_app:analysis", analysis.pk)
    analysis.private = request.POST.get("private") == "on"
    analysis.save(update_fields=["private"])
    messages.success(
        request,
        "Only you can open this analysis now." if analysis.private else "Anyone with its address can open it now.",
    )
    return redirect("ml_app:analysis", analysis.pk)
