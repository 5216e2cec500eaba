"""The hot path makes one database round trip per request (the README's count): opening, ending and showing a
session, and showing a permission, authentication included; counted on the gateway's one pooled connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from regtest.zcash_node import RunningNode
from tests.conftest import Gateway


@pytest.fixture
async def gw(make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> Gateway:
    """A gateway with one pooled connection (so every statement it runs is seen) and no Redis (no cache)."""
    node, password = zcash_regtest
    return await make_gateway(node, password, redis=False, DATABASE_POOL_SIZE="1")


@asynccontextmanager
async def counted(gw: Gateway) -> AsyncIterator[list[str]]:
    """The statements the gateway sends while the block runs (each one round trip)."""
    statements: list[str] = []

    def record(query: Any) -> None:
        statements.append(query.query)

    async with gw.database.pool.acquire() as connection:  # the pool's only connection: it keeps the logger
        connection.add_query_logger(record)
    try:
        yield statements
    finally:
        async with gw.database.pool.acquire() as connection:
            connection.remove_query_logger(record)


async def test_open_end_and_show_are_one_round_trip_each(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    token = permission["permission_token"]
    async with counted(gw) as statements:
        status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201 and len(statements) == 1, statements
    async with counted(gw) as statements:
        status, shown = await gw.call("GET", f"/api/v1/sessions/{opened['session_code']}", token=token)
    assert status == 200 and shown["status"] == "active" and len(statements) == 1, statements
    async with counted(gw) as statements:
        status, shown = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                      token=token)
    assert status == 200 and len(shown["payments"]) == 1 and len(statements) == 1, statements
    await gw.backdate_session(opened["session_id"], 60)
    async with counted(gw) as statements:
        status, ended = await gw.end_session(opened["session_code"])
    assert status == 200 and ended["status"] == "confirmed" and len(statements) == 1, statements


async def test_refusals_are_one_round_trip_too(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    pending = await gw.create_permission()
    async with counted(gw) as statements:
        status, body = await gw.open_session(pending, vendor["vendor_id"])
    assert status == 402 and body["error"]["code"] == "permission_not_funded" and len(statements) == 1
    async with counted(gw) as statements:
        status, body = await gw.call("GET", f"/api/v1/zcash/permissions/{pending['permission_id']}",
                                     token="pgp_not-a-token")
    assert status == 401 and body["error"]["code"] == "invalid_token" and len(statements) == 1
    async with counted(gw) as statements:
        status, body = await gw.end_session("NOSUCHCODE")
    assert status == 404 and len(statements) == 1
