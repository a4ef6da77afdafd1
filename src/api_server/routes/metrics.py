"""/metrics: Prometheus text format (jobs by state, rows/s, queue depth, upstream calls by model)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from sqlalchemy import func
from sqlmodel import col, select

from api_server.auth import Caller, authorize, optional_caller
from api_server.deps import QueueDep, RouterDep, SessionDep, SettingsDep
from api_server.http_errors import error_responses
from api_server.query_params import NoQueryDep
from core.gateway_stats import fleet_stats, snapshot
from core.models import Job, JobStatus, Scope

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class _Families:
    """What prometheus_client's exposition reads: an object whose collect() yields metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def metrics_caller(settings: SettingsDep,
                         caller: Annotated[Caller | None, Depends(optional_caller)]) -> Caller | None:
    """An admin key, unless METRICS_PUBLIC serves /metrics to anyone (a scraper on a private network)."""
    return caller if settings.metrics_public else authorize(caller, Scope.ADMIN)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
                       **error_responses(401, 403)})
async def metrics(_caller: Annotated[Caller | None, Depends(metrics_caller)], session: SessionDep, queue: QueueDep,
                  gateway: RouterDep, settings: SettingsDep, _: NoQueryDep) -> Response:
    """Prometheus metrics of the platform and the gateway.

    Jobs by state, rows/s of running jobs, queue depth, and per model upstream requests (ok/failed), latency
    p50/p95, in flight, tokens and cost, for this process and every worker. Needs an admin key unless
    METRICS_PUBLIC is set.
    """
    jobs = GaugeMetricFamily("rowloom_jobs", "Jobs by state", labels=["status"])
    counts = dict((await session.exec(select(Job.status, func.count()).group_by(
        col(Job.status)))).all())
    for status in JobStatus:
        jobs.add_metric([status.value], counts.get(status.value, 0))
    rate = (await session.exec(select(func.coalesce(func.sum(Job.rows_per_s), 0.0)).where(
        col(Job.status) == JobStatus.RUNNING))).one()
    families: list[Metric] = [jobs, GaugeMetricFamily("rowloom_rows_per_second", "Rows/s over running jobs",
                                                      value=float(rate or 0.0))]
    depth = await queue.depth()
    if depth is not None:
        families.append(GaugeMetricFamily("rowloom_queue_depth", "Queue entries waiting for a worker", value=depth))
    processes: dict[str, list[dict[str, Any]]] = {"api": snapshot(gateway)}
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            processes |= await fleet_stats(redis)
        except Exception:  # Redis down: the local figures still count
            log.warning("could not read worker statistics from Redis", exc_info=True)
        finally:
            await redis.aclose()
    families += upstream_families(processes)
    return Response(generate_latest(_Families(families)), media_type=CONTENT_TYPE_LATEST)


def upstream_families(processes: dict[str, list[dict[str, Any]]]) -> list[Metric]:
    """Per process and deployment: request counters, latency quantiles, in flight, tokens, cost."""
    labels = ["process", "model"]
    requests = CounterMetricFamily("rowloom_upstream_requests", "Upstream requests", labels=[*labels, "outcome"])
    latency = GaugeMetricFamily("rowloom_upstream_latency_seconds", "Upstream latency over recent requests",
                                labels=[*labels, "quantile"])
    in_flight = GaugeMetricFamily("rowloom_upstream_in_flight", "Upstream requests in flight", labels=labels)
    tokens = CounterMetricFamily("rowloom_upstream_tokens", "Tokens", labels=[*labels, "direction"])
    cost = CounterMetricFamily("rowloom_upstream_cost", "Cost in the price's currency", labels=labels)
    for process, models in processes.items():
        for m in models:
            key = [process, m["name"]]
            requests.add_metric([*key, "ok"], m["requests_ok"])
            requests.add_metric([*key, "failed"], m["requests_failed"])
            for quantile, field in (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms")):
                if m[field] is not None:
                    latency.add_metric([*key, quantile], m[field] / 1000)
            in_flight.add_metric(key, m["in_flight"])
            tokens.add_metric([*key, "in"], m["tokens_in"])
            tokens.add_metric([*key, "out"], m["tokens_out"])
            cost.add_metric(key, m["cost"])
    return [requests, latency, in_flight, tokens, cost]
