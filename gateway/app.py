"""The aiohttp application: routes, middlewares, and the runtime opened and closed with the app."""

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
    sessions,
    vendor,
    vendor_keys,
    vendor_webhooks,
)
from gateway.http import error_middleware, idempotency_middleware, request_id_middleware, unstorable_text_middleware
from gateway.keys import ADMIN_KEY_HASH, BILLING, POOL, REDIS, SETTINGS
from gateway.observability import METRICS, observability_middleware
from gateway.permissions import permission_routes, zcash_balance
from paygo.metrics import Metrics
from paygo.settings import Settings
from paygo.wiring import open_runtime
from scheduler.runner import running_scheduler

MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            request_id_middleware,
            observability_middleware,  # latency and the access log, by route template, with the request id
            error_middleware,  # maps failures of the idempotency layer itself
            unstorable_text_middleware,  # `%00` in a path or query: 422 before any handler
            idempotency_middleware(lambda request: request.app.get(POOL)),
            error_middleware,  # turns handler errors into answers the idempotency layer can store
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[ADMIN_KEY_HASH] = secret_hash(settings.admin_api_key) if settings.admin_api_key else None
    app.cleanup_ctx.append(_runtime)
    app.cleanup_ctx.append(events.session_event_hub)  # after the runtime: closes first
    app.cleanup_ctx.append(faces.services)  # the pages' services, over the runtime
    faces.setup_templates(app)
    app.add_routes(permission_routes("zcash"))
    app.add_routes([web.get("/api/v1/zcash/balance/{address}", zcash_balance)])
    app.add_routes(ethereum.routes())
    app.add_routes(card.routes())
    app.add_routes(sessions.routes)
    app.add_routes(events.routes)
    app.add_routes(admin.routes)
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
        app[POOL] = runtime.pool
        app[REDIS] = runtime.redis
        app[BILLING] = runtime.billing
        if runtime.settings.scheduler.enabled:
            async with running_scheduler(runtime, app[METRICS]):
                yield
        else:
            yield
