"""The result as the API sends it, from the stored one: the summary in plain words added, crop URLs attached to
faces and people, and the worker's own timings (loading the checkpoint) joined to the stages' (one ``timings``)."""

from __future__ import annotations

from rest_framework import serializers

from ..detection.summary import summarize
from ..models import Analysis


class SummarySerializer(serializers.Serializer):
    """The verdict in plain words (ml_app.detection.summary), as the result page and the PDF say it."""

    verdict = serializers.ChoiceField(choices=["REAL", "FAKE", "INCONCLUSIVE"])
    headline = serializers.CharField(help_text="the verdict in one sentence")
    meaning = serializers.CharField(
        allow_null=True, help_text="whose number the fake probability is and what it means, with the model's prior"
    )
    why = serializers.CharField(
        allow_null=True, help_text="for INCONCLUSIVE: which threshold, which person, which windows"
    )
    coverage = serializers.CharField(help_text="how much of the file was looked at, and how many people")
    text = serializers.CharField(help_text="all of the above in one paragraph")


def shown_result(analysis: Analysis, crops_url: str) -> dict:
    """The stored result with its summary, crop URLs and all timings, ready for ResultSerializer."""
    return {
        **_with_crop_urls(analysis.result, crops_url),
        "summary": summarize(analysis.result),
        "timings": _all_timings(analysis),
    }


def _with_crop_urls(result: dict, crops_url: str) -> dict:
    """Attach thumbnail and strip URLs to tracks and people, from the analysis' crop files."""
    files = result.get("crop_files") or {}
    by_window = files.get("windows", {})
    people_files = files.get("people", {})
    windows = []
    for window in result.get("windows", []):
        tracks = []
        for track in window["tracks"]:
            names = by_window.get(str(window["index"]), {}).get(str(track["track_id"])) or {}
            tracks.append(
                {
                    **track,
                    "thumbnail_url": crops_url + names["thumb"] if "thumb" in names else None,
                    "strip_url": crops_url + names["strip"] if "strip" in names else None,
                }
            )
        windows.append({**window, "tracks": tracks})
    people = [
        {
            **p,
            "thumbnail_url": crops_url + people_files[str(p["person_id"])]
            if str(p["person_id"]) in people_files
            else None,
        }
        for p in result.get("people", [])
    ]
    return {**result, "windows": windows, "people": people}


def _all_timings(analysis: Analysis) -> dict[str, float]:
    """The analysis' stage times and the worker's own (loading the checkpoint), in one place: the result's."""
    job = {
        stage: seconds
        for stage, seconds in (analysis.timings or {}).items()
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    }
    return {**(analysis.result.get("timings") or {}), **job}
