"""Shared fixtures: real PostgreSQL and Redis (tests/services.py), the Zcash stand-in over HTTP
(tests/zcash_fixtures.py), and a gateway wired to them with helpers that walk the product's flows."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from billing.db import init_connection
from billing.jobs import JobService
from billing.payment_uri import permission_memo, zip321_uri
from billing.services import Services
from billing.unit_of_work import Database
from chains.jsonrpc import JsonRpcClient, decode_json, encode_json
from chains.zcash_address import ZcashNetwork, encode_transparent, encode_unified
from gateway.app import create_app
from gateway.keys import SERVICES
from paygo.settings import Settings
from regtest.zcash_node import RunningNode, start_zcash_regtest

pytest_plugins = ["tests.services", "tests.zcash_fixtures", "tests.ethereum_fixtures", "tests.webhook_fixtures",
                  "tests.stripe_fixtures", "tests.browser_fixtures"]

RPC_USER = "paygo-test"
ADMIN_KEY = "admin-" + secrets.token_urlsafe(24)
MIN_CONFIRMATIONS = 2


def new_wallet() -> str:
    """A fresh regtest wallet address (a unified address with a Sapling receiver)."""
    return encode_unified(ZcashNetwork.REGTEST, {"sapling": secrets.token_bytes(43)})


def new_transparent_wallet() -> str:
    return encode_transparent(ZcashNetwork.REGTEST, "p2pkh", secrets.token_bytes(20))


def zcash_uri(permission: dict[str, Any], zatoshi: int | None) -> str:
    """The ZIP-321 URI a permission's payer is shown: its address, the amount (None: any) and its memo."""
    return zip321_uri(permission["payment_address"], zatoshi,
                      memo=permission_memo(permission["permission_id"]).encode())


def gateway_env(database_dsn: str, redis_url: str | None, node: RunningNode, password: str,
                **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_dsn,
        "ADMIN_API_KEY": ADMIN_KEY,
        "ZCASH_RPC_URL": node.url,
        "ZCASH_NODE_RPC_URL": node.node_url,
        "ZCASH_RPC_USER": RPC_USER,
        "ZCASH_RPC_PASSWORD": password,
        "ZCASH_NETWORK": "regtest",
        "ZCASH_MIN_CONFIRMATIONS": str(MIN_CONFIRMATIONS),
        "ZCASH_RPC_TIMEOUT_SECONDS": "2",
        "SCHEDULER_ENABLED": "false",  # tests drive the jobs themselves, at the instants they choose
        # every test calls from 127.0.0.1; tests of the limits themselves set their own
        "RATE_LIMIT_ANONYMOUS": "100000/minute",
        "RATE_LIMIT_CREATE": "100000/minute",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


@dataclass
class Gateway:
    """A running gateway under test with the node it talks to, and the product's flows as helpers."""

    client: TestClient
    node: RunningNode
    wallet_rpc: JsonRpcClient  # the test's own clients to the stand-in: the wallet (faucet) ...
    chain_rpc: JsonRpcClient  # ... and the chain (mining, reorgs); one URL for zcashd, two for Zallet + zebrad
    db: asyncpg.Pool
    settings: Settings

    @property
    def services(self) -> Services:
        """The gateway's own services (the one door into billing), for tests that drive the jobs themselves."""
        return self.client.app[SERVICES]

    @property
    def database(self) -> Database:
        return self.services.database

    @property
    def jobs(self) -> JobService:
        return self.services.jobs

    async def call(self, method: str, path: str, *, token: str | None = None, api_key: str | None = None,
                   json: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if api_key:
            sent["X-API-Key"] = api_key
        if json is not None:
            sent.setdefault("Content-Type", "application/json")
        data = encode_json(json) if json is not None else None
        response = await self.client.request(method, path, data=data, headers=sent)
        if response.content_type == "application/json":
            return response.status, decode_json(await response.read())
        return response.status, await response.text()

    async def create_vendor(self, name: str = "vendor") -> dict[str, Any]:
        status, body = await self.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY, json={"name": name})
        assert status == 201, body
        return body

    async def create_permission(self, amount: object = "10", rate: object = "2.5", *, wallet: str | None = None,
                                **fields: Any) -> dict[str, Any]:
        body = {"user_wallet_address": wallet or new_wallet(), "requested_amount": amount, "rate_per_hour": rate,
                **fields}
        status, created = await self.call("POST", "/api/v1/zcash/permissions", json=body)
        assert status == 201, created
        return created

    async def pay(self, address: str, amount: str, memo: str | None = None) -> str:
        """Send from the stand-in's faucet (mempool, 0 confirmations); returns the txid."""
        recipient: dict[str, Any] = {"address": address, "amount": Decimal(amount)}
        if memo is not None:
            recipient["memo"] = memo.encode().hex()
        opid = await self.wallet_rpc.send("z_sendmany", "ANY_TADDR", [recipient])
        for _ in range(200):
            [status] = await self.wallet_rpc.call("z_getoperationstatus", [opid])
            if status["status"] == "success":
                return status["result"]["txid"]
            assert status["status"] in ("queued", "executing"), status
            await asyncio.sleep(0.01)
        raise AssertionError(f"operation {opid} did not finish")

    async def mine(self, blocks: int = 1) -> list[str]:
        return await self.chain_rpc.call("generate", blocks)

    async def verify(self, permission: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.call("POST", f"/api/v1/zcash/permissions/{permission['permission_id']}/verify",
                                       token=permission["permission_token"])
        assert status == 200, body
        return body

    async def funded_permission(self, amount: str = "10", rate: str = "2.5", **fields: Any) -> dict[str, Any]:
        permission = await self.create_permission(amount, rate, **fields)
        await self.pay(permission["payment_address"], amount)
        await self.mine(MIN_CONFIRMATIONS)
        verified = await self.verify(permission)
        assert verified["status"] == "active", verified
        return permission

    async def open_session(self, permission: dict[str, Any], vendor_id: str) -> tuple[int, Any]:
        return await self.call("POST", "/api/v1/sessions", token=permission["permission_token"],
                               json={"user_wallet_address": permission["user_wallet_address"], "vendor_id": vendor_id})

    async def end_session(self, session_code: str) -> tuple[int, Any]:
        return await self.call("POST", "/api/v1/sessions/end", json={"session_code": session_code})

    async def backdate_session(self, session_id: str, seconds: int) -> None:
        """Move a session's start into the past: the database clock is the only clock billing reads."""
        await self.db.execute("UPDATE sessions SET started_at = started_at - make_interval(secs => $2) WHERE id = $1",
                              session_id, seconds)


@pytest.fixture
async def zcash_regtest() -> AsyncIterator[tuple[RunningNode, str]]:
    password = secrets.token_urlsafe(12)
    node = await start_zcash_regtest(rpcuser=RPC_USER, rpcpassword=password, personality="zcashd")
    yield node, password
    await node.stop()


@pytest.fixture
async def make_gateway(database_dsn: str, redis_url: str,
                       aiohttp_client: Callable[..., Any]) -> AsyncIterator[Callable[..., Any]]:
    """Build a gateway against a stand-in node; extra settings as environment variables.

    `aiohttp_client` comes last so that it is torn down (the app closed) before the test database is dropped."""
    opened: list[Any] = []

    async def build(node: RunningNode, password: str, *, redis: bool = True, **env: str) -> Gateway:
        settings = Settings.from_env(gateway_env(database_dsn, redis_url if redis else None, node, password, **env))
        client = await aiohttp_client(create_app(settings))
        db = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4, init=init_connection)
        gateway = Gateway(client, node, JsonRpcClient(node.url, user=RPC_USER, password=password),
                          JsonRpcClient(node.node_url, user=RPC_USER, password=password), db, settings)
        opened.extend([gateway.wallet_rpc, gateway.chain_rpc, db])
        return gateway

    yield build
    for resource in opened:
        await resource.close()


@pytest.fixture
async def gw(make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> Gateway:
    node, password = zcash_regtest
    return await make_gateway(node, password)
