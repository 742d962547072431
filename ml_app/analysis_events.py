"""One log line per event in an analysis' life (submitted, started, done, failed, requeued), on the logger
``ml_app.events``: plain text by default, one JSON object per line with LOG_FORMAT=json (``log_format``)."""

from __future__ import annotations

import logging

log = logging.getLogger("ml_app.events")


def emit(event: str, analysis_id, **fields) -> None:
    """Log ``event`` for the analysis with its fields (status, error code, verdict, seconds, ...)."""
    data = {"event": f"analysis_{event}", "analysis": str(analysis_id), **fields}
    details = " ".join(f"{key}={value}" for key, value in fields.items())
    log.info("analysis %s %s %s", analysis_id, event, details, extra={"event_fields": data})
