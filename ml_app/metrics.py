"""``/metrics`` in Prometheus' text format, read from the database at each scrape.

The database is the one place every web process and every worker writes to, so the figures are the same whichever
process answers, with any number of processes and machines, and survive restarts: analyses submitted, refused
uploads by reason, analyses done and failed (by error code), verdicts, the queue, the stage durations and model load
times the worker stored with each result (as histograms), the workers' heartbeats, and requests refused for a host
name this site does not serve. Analyses deleted by MEDIA_RETENTION_DAYS leave the counts (Prometheus reads a
decrease as a counter reset).

Access (METRICS_ALLOWED_IPS, METRICS_TOKEN) is checked in the view; with neither set the endpoint is off (404).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, FloatField, Q, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .models import Analysis, RejectedUpload, ServiceCounter, WorkerHeartbeat

PREFIX = "deepfake"
STAGES = ("probe", "decode", "detect", "crop", "network", "heatmaps", "provenance", "total")
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
DISALLOWED_HOST = "disallowed_host"  # the ServiceCounter the host guard increments


def _histogram_aggregates(key: str, buckets: tuple[float, ...], where: Q) -> dict:
    field = f"timings__{key}"
    aggregates = {
        f"{key}__count": Count("pk", filter=where & Q(**{f"{field}__isnull": False})),
        f"{key}__sum": Sum(Cast(KeyTextTransform(key, "timings"), FloatField()), filter=where),
    }
    for index, bound in enumerate(buckets):
        aggregates[f"{key}__le{index}"] = Count("pk", filter=where & Q(**{f"{field}__lte": bound}))
    return aggregates


def _histogram_buckets(row: dict, key: str, buckets: tuple[float, ...]) -> list[tuple[str, float]]:
    counted = [(repr(bound), float(row[f"{key}__le{index}"])) for index, bound in enumerate(buckets)]
    return [*counted, ("+Inf", float(row[f"{key}__count"]))]


class DatabaseCollector(Collector):
    """Every metric from the database, one aggregate query per table."""

    def collect(self) -> Iterator[Metric]:
        yield from self._analyses()
        refused = CounterMetricFamily(f"{PREFIX}_uploads_refused", "Uploads refused, by reason", labels=["reason"])
        for row in RejectedUpload.objects.values("code").annotate(n=Count("pk")).order_by("code"):
            refused.add_metric([row["code"]], row["n"])
        yield refused
        yield from self._durations()
        yield from self._workers()
        hosts = ServiceCounter.objects.filter(name=DISALLOWED_HOST).values_list("value", flat=True).first() or 0
        yield CounterMetricFamily(
            f"{PREFIX}_disallowed_host_requests", "Requests refused for a Host not in ALLOWED_HOSTS", value=hosts
        )

    def _analyses(self) -> Iterator[Metric]:
        by_status = dict(Analysis.objects.values_list("status").annotate(n=Count("pk")).order_by())
        yield CounterMetricFamily(
            f"{PREFIX}_analyses_submitted", "Analyses submitted (site and API)", value=sum(by_status.values())
        )
        yield CounterMetricFamily(
            f"{PREFIX}_analyses_done", "Analyses finished with a result", value=by_status.get(Analysis.Status.DONE, 0)
        )
        failed = CounterMetricFamily(f"{PREFIX}_analyses_failed", "Analyses failed, by error code", labels=["code"])
        rows = Analysis.objects.filter(status=Analysis.Status.FAILED).values("error_code").annotate(n=Count("pk"))
        for row in rows.order_by("error_code"):
            failed.add_metric([row["error_code"] or "unknown"], row["n"])
        yield failed
        verdicts = CounterMetricFamily(f"{PREFIX}_verdicts", "Results shown to users, by verdict", labels=["verdict"])
        rows = Analysis.objects.filter(status=Analysis.Status.DONE).values("verdict").annotate(n=Count("pk"))
        for row in rows.order_by("verdict"):
            verdicts.add_metric([row["verdict"]], row["n"])
        yield verdicts
        yield GaugeMetricFamily(
            f"{PREFIX}_queue_length", "Analyses waiting for a worker", value=by_status.get(Analysis.Status.QUEUED, 0)
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_analyses_running", "Analyses a worker is on", value=by_status.get(Analysis.Status.RUNNING, 0)
        )

    def _durations(self) -> Iterator[Metric]:
        analysed = Q(status=Analysis.Status.DONE, reused_from__isnull=True)
        aggregates: dict = {}
        for stage in STAGES:
            aggregates.update(_histogram_aggregates(stage, STAGE_BUCKETS, analysed))
        aggregates.update(
            _histogram_aggregates("checkpoint_load", LOAD_BUCKETS, analysed & Q(timings__checkpoint_cached=False))
        )
        row = Analysis.objects.aggregate(**aggregates)
        stages = HistogramMetricFamily(
            f"{PREFIX}_stage_duration_seconds", "Seconds per stage of an analysis (worker)", labels=["stage"]
        )
        for stage in STAGES:
            stages.add_metric([stage], _histogram_buckets(row, stage, STAGE_BUCKETS), row[f"{stage}__sum"] or 0.0)
        yield stages
        load = HistogramMetricFamily(f"{PREFIX}_model_load_seconds", "Seconds to load a checkpoint not yet cached")
        load.add_metric([], _histogram_buckets(row, "checkpoint_load", LOAD_BUCKETS), row["checkpoint_load__sum"] or 0)
        yield load

    def _workers(self) -> Iterator[Metric]:
        now = timezone.now()
        ages = GaugeMetricFamily(
            f"{PREFIX}_worker_heartbeat_age_seconds", "Seconds since each worker last reported", labels=["worker"]
        )
        live = 0
        for name, seen in WorkerHeartbeat.objects.values_list("name", "seen_at").order_by("name"):
            age = (now - seen).total_seconds()
            ages.add_metric([name], age)
            live += age <= settings.ANALYSIS_STALE_SECONDS
        yield ages
        yield GaugeMetricFamily(f"{PREFIX}_workers_live", "Workers seen within ANALYSIS_STALE_SECONDS", value=live)


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def _allowed(request: HttpRequest) -> bool | None:
    """True if this caller may read the metrics, False if not, None if the endpoint is off."""
    token = settings.METRICS_TOKEN
    networks = settings.METRICS_ALLOWED_IPS
    if not token and not networks:
        return None
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in networks)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    allowed = _allowed(request)
    if allowed is None:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    if not allowed:
        return HttpResponse("The metrics are not open to this caller.\n", status=403, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
