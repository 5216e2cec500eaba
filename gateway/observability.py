"""Per-request observation (latency histogram and one access-log line) and the `/metrics` endpoint.

Requests are named by their route template (`/api/v1/sessions/{session_code}`), never by their path: the path of
some routes holds a secret, and raw paths would make a label per URL.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.auth import require_metrics_reader
from gateway.http import CLIENT_CLOSED_REQUEST, REQUEST_ID_KEY, Handler, route_name
from gateway.keys import SERVICES
from gateway.openapi import Auth, Operation, describe
from paygo.logs import REQUEST_ID
from paygo.metrics import Metrics

METRICS = web.AppKey("metrics", Metrics)

access_log = logging.getLogger("paygo.access")


@web.middleware
async def observability_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sits inside the request-id middleware and outside the error mapping, so it sees the final status."""
    started = time.perf_counter()
    request_id = REQUEST_ID.set(request.get(REQUEST_ID_KEY))
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED_REQUEST
        raise
    finally:
        seconds = time.perf_counter() - started
        route = route_name(request)
        request.app[METRICS].observe_request(request.method, route, status, seconds)
        duration_ms = round(seconds * 1000, 2)
        access_log.info("%s %s %d %.2fms", request.method, route, status, duration_ms,
                        extra={"method": request.method, "route": route, "status": status,
                               "duration_ms": duration_ms})
        REQUEST_ID.reset(request_id)


@describe(Operation(summary="Prometheus metrics (text exposition format)", tag="operations",
                    auth=(Auth.OPERATOR_KEY, Auth.METRICS_TOKEN), response={"type": "string"},
                    response_media_types=("text/plain",), uses_database=False))
async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text format; the gauges are read now, and a database outage shows as paygo_database_up 0. For the
    operator key or METRICS_TOKEN (`Authorization: Bearer`), as Prometheus' `authorization` setting sends it."""
    require_metrics_reader(request)
    metrics = request.app[METRICS]
    services = request.app[SERVICES]
    counts, statuses = await asyncio.gather(services.reports.operational_counts(), services.health.source_statuses())
    metrics.set_database_counts(counts)
    metrics.set_source_statuses(statuses)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


routes = [web.get("/metrics", metrics_endpoint)]
