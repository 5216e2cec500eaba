"""The aiohttp application: routes, middlewares, and the runtime (paygo.wiring) opened and closed with the app.

The app serves HTTP only: it starts no job. `paygo serve` runs the scheduler beside it (paygo.cli).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from billing.secrets import secret_hash
from gateway import (
    admin,
    card,
    dashboard_api,
    ethereum,
    events,
    faces,
    health,
    observability,
    openapi,
    pages,
    permissions,
    pricing,
    sessions,
    vendor,
    vendor_keys,
    vendor_webhooks,
)
from gateway.http import (
    body_middleware,
    error_middleware,
    idempotency_middleware,
    request_id_middleware,
    unstorable_text_middleware,
)
from gateway.keys import ADMIN_KEY_HASH, METRICS_TOKEN_HASH, REDIS, REDIS_BREAKER, SERVICES, SETTINGS
from gateway.observability import METRICS, observability_middleware
from gateway.rate_limits import rate_limit_middleware, rate_limiter
from paygo.metrics import Metrics
from paygo.settings import Settings
from paygo.wiring import open_runtime

MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 64
MAX_HEADER_LINE_BYTES = 8190


def app_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The server around the app, with the connection limits of the settings: a connection that sends no complete
    request head within HTTP_IDLE_TIMEOUT_SECONDS is closed (aiohttp's keep-alive timer runs from the connection's
    start and between requests, so it also ends slow-header clients), and request heads are bounded. Bodies have
    their own timeout (gateway.http.body_middleware). No access log from aiohttp: ours names routes, never paths.
    Stopping it drains: requests in flight get SHUTDOWN_TIMEOUT_SECONDS to finish."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=settings.perimeter.http_idle_timeout_seconds,
                         max_headers=MAX_HEADERS, max_line_size=MAX_HEADER_LINE_BYTES,
                         max_field_size=MAX_HEADER_LINE_BYTES, handle_signals=False,
                         shutdown_timeout=settings.serving.shutdown_timeout_seconds)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            request_id_middleware,
            observability_middleware,  # latency and the access log, by route template, with the request id
            error_middleware,  # maps failures of the layers below (429, 408, idempotency)
            rate_limit_middleware,  # counted before anything is read
            body_middleware,  # the body, within HTTP_BODY_TIMEOUT_SECONDS
            unstorable_text_middleware,  # `%00` in a path or query: 422 before any handler
            idempotency_middleware,  # after authenticating the caller
            error_middleware,  # turns handler errors into answers the idempotency layer can store
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics(multiprocess_dir=settings.serving.metrics_dir)
    app[ADMIN_KEY_HASH] = secret_hash(settings.admin_api_key) if settings.admin_api_key else None
    metrics_token = settings.perimeter.metrics_token
    app[METRICS_TOKEN_HASH] = secret_hash(metrics_token) if metrics_token else None
    app.cleanup_ctx.append(_runtime)
    app.cleanup_ctx.append(events.session_event_hub)  # after the runtime: closes first
    faces.setup_templates(app)
    app.cleanup_ctx.append(rate_limiter)
    app.add_routes(permissions.routes("zcash", refunds=True))
    app.add_routes(permissions.zcash_routes)
    app.add_routes(ethereum.routes())
    app.add_routes(card.routes())
    app.add_routes(sessions.routes)
    app.add_routes(events.routes)
    app.add_routes(admin.routes)
    app.add_routes(pricing.routes)
    app.add_routes(health.routes)
    app.add_routes(vendor.routes)
    app.add_routes(vendor_keys.routes)
    app.add_routes(vendor_webhooks.routes)
    app.add_routes(observability.routes)
    app.add_routes(openapi.routes)
    app.add_routes(dashboard_api.routes)
    app.add_routes(pages.routes)
    app.add_routes([faces.static_route()])
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    async with open_runtime(app[SETTINGS]) as runtime:
        app[SERVICES] = runtime.services
        app[REDIS] = runtime.redis
        app[REDIS_BREAKER] = runtime.redis_breaker
        yield
