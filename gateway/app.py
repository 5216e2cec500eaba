"""The aiohttp application: routes, middlewares, and the runtime opened and closed with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from billing.secrets import secret_hash
from gateway import admin, health, sessions
from gateway.http import error_middleware, idempotency_middleware, request_id_middleware
from gateway.keys import ADMIN_KEY_HASH, BILLING, POOL, REDIS, SETTINGS
from gateway.permissions import permission_routes, zcash_balance
from paygo.settings import Settings
from paygo.wiring import open_runtime

MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            request_id_middleware,
            error_middleware,  # maps failures of the idempotency layer itself
            idempotency_middleware(lambda request: request.app.get(POOL)),
            error_middleware,  # turns handler errors into answers the idempotency layer can store
        ],
    )
    app[SETTINGS] = settings
    app[ADMIN_KEY_HASH] = secret_hash(settings.admin_api_key) if settings.admin_api_key else None
    app.cleanup_ctx.append(_runtime)
    app.add_routes(permission_routes("zcash"))
    app.add_routes([web.get("/api/v1/zcash/balance/{address}", zcash_balance)])
    app.add_routes(sessions.routes)
    app.add_routes(admin.routes)
    app.add_routes(health.routes)
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    async with open_runtime(app[SETTINGS]) as runtime:
        app[POOL] = runtime.pool
        app[REDIS] = runtime.redis
        app[BILLING] = runtime.billing
        yield
