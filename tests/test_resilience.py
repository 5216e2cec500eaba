"""The gateway under failure and in every Zcash personality: Zallet + zebrad end to end, the database going
down (503 with Retry-After, readiness off, recovery), Redis down or absent (everything still works), and the
permission cache being invalidated on writes."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from billing.ledger import recompute_balances
from gateway.app import create_app
from gateway.keys import REDIS
from paygo.embedded import start_private_postgres
from paygo.settings import Settings
from regtest.zcash_node import start_zcash_regtest
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, RPC_USER, Gateway, gateway_env, new_wallet


async def test_seed_flow_against_zallet_and_zebrad(make_gateway: Callable[..., Any]) -> None:
    password = secrets.token_urlsafe(12)
    node = await start_zcash_regtest(rpcuser=RPC_USER, rpcpassword=password, personality="zallet")
    try:
        assert node.node_url != node.url  # Zallet (wallet) and zebrad (chain) answer on separate endpoints
        gw: Gateway = await make_gateway(node, password)
        vendor = await gw.create_vendor()
        permission = await gw.create_permission("10", "2.5")
        assert permission["payment_address"].startswith("uregtest1")
        await gw.pay(permission["payment_address"], "10")
        assert (await gw.verify(permission))["confirmations_seen"] == 0
        await gw.mine(MIN_CONFIRMATIONS)
        assert (await gw.verify(permission))["status"] == "active"
        status, opened = await gw.open_session(permission, vendor["vendor_id"])
        assert status == 201
        await gw.backdate_session(opened["session_id"], 1800)
        status, ended = await gw.end_session(opened["session_code"])
        assert ended["amount"] == "1.25000000" and ended["status"] == "confirmed"
        status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
        assert health["checks"]["zcash"]["reachable"] is True
        assert await recompute_balances(gw.db) == []
    finally:
        await node.stop()


async def test_database_down_is_503_and_readiness_recovers(
    aiohttp_client: Callable[..., Any], services_state_dir: Path, zcash_regtest: tuple[Any, str]
) -> None:
    node, password = zcash_regtest
    state = services_state_dir / f"db-down-{secrets.token_hex(4)}"  # reachable by the postgres user
    server = await start_private_postgres(state, "paygo")
    try:
        settings = Settings.from_env(gateway_env(server.dsn, None, node, password))
        client = await aiohttp_client(create_app(settings))
        body = {"user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1"}
        created = await client.post("/api/v1/zcash/permissions", json=body)
        assert created.status == 201
        token = (await created.json())["permission_token"]
        assert (await client.get("/api/v1/health/ready")).status == 200

        await server.stop()
        ready = await client.get("/api/v1/health/ready")
        assert ready.status == 503 and int(ready.headers["Retry-After"]) > 0
        health = await client.get("/api/v1/health", headers={"X-API-Key": ADMIN_KEY})
        assert health.status == 503 and (await health.json())["checks"]["database"]["ok"] is False
        for method, path, kwargs in [
            ("POST", "/api/v1/zcash/permissions", {"json": body}),
            ("POST", "/api/v1/sessions", {"json": {"user_wallet_address": body["user_wallet_address"],
                                                     "vendor_id": "00000000-0000-0000-0000-000000000000"},
                                            "headers": {"Authorization": f"Bearer {token}"}}),
            ("POST", "/api/v1/sessions/end", {"json": {"session_code": "ABC"}}),
        ]:
            answer = await client.request(method, path, **kwargs)
            assert answer.status == 503, (path, await answer.text())
            assert (await answer.json())["error"]["code"] == "database_unavailable"
            assert int(answer.headers["Retry-After"]) > 0
        assert (await client.get("/api/v1/health/live")).status == 200

        server = await start_private_postgres(state, "paygo", port=urlsplit(server.dsn).port)
        assert (await client.get("/api/v1/health/ready")).status == 200  # the pool reconnects by itself
        again = await client.post("/api/v1/zcash/permissions", json={**body, "user_wallet_address": new_wallet()})
        assert again.status == 201
    finally:
        await server.stop()


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:9/0", None])
async def test_gateway_works_with_redis_down_or_absent(
    make_gateway: Callable[..., Any], zcash_regtest: tuple[Any, str], redis_url: str | None
) -> None:
    node, password = zcash_regtest
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    gw: Gateway = await make_gateway(node, password, redis=False, **extra)
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    status, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                  token=permission["permission_token"])
    assert status == 200 and shown["status"] == "active"
    status, _ended = await gw.end_session(opened["session_code"])
    assert status == 200
    status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert health["checks"]["redis"]["ok"] is (redis_url is None)


async def test_cached_permission_reads_are_invalidated_on_every_write(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    path = f"/api/v1/zcash/permissions/{permission['permission_id']}"
    first = (await gw.call("GET", path, token=permission["permission_token"]))[1]
    cached = await gw.client.app[REDIS].get(f"paygo:permission:{permission['permission_id']}")
    assert cached is not None  # the read was cached
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 3600)
    await gw.end_session(opened["session_code"])
    after = (await gw.call("GET", path, token=permission["permission_token"]))[1]
    assert first["remaining_amount"] == "10.00000000" and after["remaining_amount"] == "7.50000000"


async def test_health_degrades_when_the_billing_tick_is_three_intervals_late(gw: Gateway) -> None:
    interval = gw.settings.billing_interval_seconds
    await gw.db.execute(
        "INSERT INTO job_runs (job_name, last_started_at, last_succeeded_at, runs) "
        "VALUES ('billing_tick', now(), now() - make_interval(secs => $1), 1)", 2 * interval)
    status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert health["checks"]["scheduler"]["ok"] is True and health["checks"]["scheduler"]["lag_seconds"] >= 2 * interval
    await gw.db.execute("UPDATE job_runs SET last_succeeded_at = now() - make_interval(secs => $1)", 3 * interval + 5)
    status, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert status == 200 and health["status"] == "degraded"
    assert health["checks"]["scheduler"]["ok"] is False
    assert health["checks"]["scheduler"]["max_lag_seconds"] == 3 * interval
