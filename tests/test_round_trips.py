"""The hot path makes one database round trip per request (the README's count): opening, ending and showing a
session, and showing a permission, authentication included; counted on the gateway's one pooled connection."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from billing.ledger import recompute_balances
from regtest.zcash_node import RunningNode
from tests.conftest import MIN_CONFIRMATIONS, Gateway


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


async def test_an_idempotency_key_adds_no_round_trip_and_replays_the_first_answer(gw: Gateway) -> None:
    """Opening and ending under an Idempotency-Key claim the key, do the work and record the answer in one call;
    a retry gets that answer again (marked replayed) in one call, and nothing runs twice."""
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    token = permission["permission_token"]
    opening = {"user_wallet_address": permission["user_wallet_address"], "vendor_id": vendor["vendor_id"]}
    key = {"Idempotency-Key": "open-" + secrets.token_hex(8)}
    async with counted(gw) as statements:
        response = await gw.client.post("/api/v1/sessions", json=opening, headers={**key, **bearer(token)})
        opened = await response.json()
    assert response.status == 201 and "Idempotent-Replayed" not in response.headers and len(statements) == 1
    async with counted(gw) as statements:
        response = await gw.client.post("/api/v1/sessions", json=opening, headers={**key, **bearer(token)})
    assert (response.status, await response.json()) == (201, opened) and len(statements) == 1, statements
    assert response.headers["Idempotent-Replayed"] == "true"
    assert await gw.db.fetchval("SELECT count(*) FROM sessions") == 1

    await gw.backdate_session(opened["session_id"], 60)
    ending = {"Idempotency-Key": secrets.token_urlsafe(32)}  # anonymous: the key is the secret
    async with counted(gw) as statements:
        response = await gw.client.post("/api/v1/sessions/end", json={"session_code": opened["session_code"]},
                                        headers=ending)
        ended = await response.json()
    assert response.status == 200 and ended["status"] == "confirmed" and len(statements) == 1, statements
    await gw.call("POST", "/api/v1/sessions", token=token, json=opening)  # the permission moves on
    async with counted(gw) as statements:
        response = await gw.client.post("/api/v1/sessions/end", json={"session_code": opened["session_code"]},
                                        headers=ending)
    assert (response.status, await response.json()) == (200, ended) and len(statements) == 1, statements
    assert response.headers["Idempotent-Replayed"] == "true"
    status, body = await gw.call("POST", "/api/v1/sessions/end", json={"session_code": "ANOTHER"}, headers=ending)
    assert (status, body["error"]["code"]) == (422, "idempotency_key_reused")
    assert await recompute_balances(gw.db) == []


async def test_a_refusal_is_replayed_too_and_a_bad_token_claims_nothing(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    pending = await gw.create_permission()
    opening = {"user_wallet_address": pending["user_wallet_address"], "vendor_id": vendor["vendor_id"]}
    key = {"Idempotency-Key": "open-early"}
    response = await gw.client.post("/api/v1/sessions", json=opening,
                                    headers={**key, **bearer(pending["permission_token"])})
    assert (response.status, (await response.json())["error"]["code"]) == (402, "permission_not_funded")
    await gw.pay(pending["payment_address"], "10")
    await gw.mine(MIN_CONFIRMATIONS)
    assert (await gw.verify(pending))["status"] == "active"
    response = await gw.client.post("/api/v1/sessions", json=opening,
                                    headers={**key, **bearer(pending["permission_token"])})
    assert response.status == 402 and response.headers["Idempotent-Replayed"] == "true"  # the first answer
    async with counted(gw) as statements:
        status, body = await gw.call("POST", "/api/v1/sessions", token="pgp_not-a-token", json=opening, headers=key)
    assert (status, body["error"]["code"]) == (401, "invalid_token") and len(statements) == 1
    assert await gw.db.fetchval("SELECT count(*) FROM idempotency_keys") == 1


async def test_a_wallet_spelt_otherwise_opens_once_under_its_key(gw: Gateway) -> None:
    """The first call learns the stored spelling and releases the key in the same transaction; the second claims
    it and opens."""
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    opening = {"user_wallet_address": permission["user_wallet_address"].upper(), "vendor_id": vendor["vendor_id"]}
    key = {"Idempotency-Key": "open-upper"}
    async with counted(gw) as statements:
        status, opened = await gw.call("POST", "/api/v1/sessions", token=permission["permission_token"],
                                       json=opening, headers=key)
    assert status == 201 and len(statements) == 2, statements
    again = await gw.call("POST", "/api/v1/sessions", token=permission["permission_token"], json=opening,
                          headers=key)
    assert again == (201, opened)
    assert await gw.db.fetchval("SELECT count(*) FROM sessions") == 1


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
