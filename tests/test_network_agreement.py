"""Network agreement and wallet health (issue 10, findings 9 and 10): with ZCASH_NETWORK unset the gateway follows
the node; set and different, start-up stops naming both (and a node first reached later is refused the same way);
ETH_CHAIN_ID is checked at start-up; a node whose wallet lost the service account is not healthy."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from chains.zcash_address import ZcashNetwork, encode_transparent
from gateway.app import create_app
from kernel.errors import NetworkMismatch
from paygo.settings import Settings
from regtest.zcash_node import RunningNode, start_zcash_regtest
from tests.conftest import ADMIN_KEY, RPC_USER, gateway_env, new_wallet
from tests.ethereum_fixtures import Anvil, free_port


async def test_an_unset_network_follows_the_node(make_gateway: Callable[..., Any],
                                                 zcash_regtest: tuple[RunningNode, str]) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, ZCASH_NETWORK="")
    assert gw.settings.zcash.network is None
    created = await gw.create_permission(wallet=new_wallet())  # a regtest wallet, as the node serves
    assert created["payment_address"].startswith("uregtest")
    mainnet_wallet = encode_transparent(ZcashNetwork.MAIN, "p2pkh", bytes(20))
    status, body = await gw.call("POST", "/api/v1/zcash/permissions", json={
        "user_wallet_address": mainnet_wallet, "requested_amount": "1", "rate_per_hour": "1"})
    assert (status, body["error"]["code"]) == (422, "wrong_network")


async def test_a_configured_network_the_node_does_not_serve_stops_the_start(
        database_dsn: str, redis_url: str, zcash_regtest: tuple[RunningNode, str],
        aiohttp_client: Callable[..., Any]) -> None:
    node, password = zcash_regtest
    settings = Settings.from_env(gateway_env(database_dsn, None, node, password, ZCASH_NETWORK="main"))
    with pytest.raises(NetworkMismatch) as refused:
        await aiohttp_client(create_app(settings))
    assert "ZCASH_NETWORK is main" in refused.value.message and "serves regtest" in refused.value.message


async def test_a_node_first_reached_after_start_up_is_checked_then(database_dsn: str,
                                                                  aiohttp_client: Callable[..., Any]) -> None:
    port = free_port()
    password = secrets.token_urlsafe(12)
    absent = RunningNode(f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/", None, None,  # type: ignore[arg-type]
                         RPC_USER, password)
    settings = Settings.from_env(gateway_env(database_dsn, None, absent, password, ZCASH_NETWORK="main"))
    client = await aiohttp_client(create_app(settings))  # the node does not answer yet: start-up goes on
    node = await start_zcash_regtest(port=port, rpcuser=RPC_USER, rpcpassword=password)
    try:
        response = await client.post("/api/v1/zcash/permissions", json={
            "user_wallet_address": encode_transparent(ZcashNetwork.MAIN, "p2pkh", bytes(20)),
            "requested_amount": "1", "rate_per_hour": "1"})
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (503, "network_mismatch")
        assert "main" in body["error"]["message"] and "regtest" in body["error"]["message"]
        health = await (await client.get("/api/v1/health", headers={"X-API-Key": ADMIN_KEY})).json()
        assert health["checks"]["zcash"]["ok"] is False and "regtest" in health["checks"]["zcash"]["detail"]
    finally:
        await node.stop()


async def test_a_wrong_eth_chain_id_stops_the_start(make_eth_gateway: Callable[..., Any], anvil: Anvil) -> None:
    with pytest.raises(NetworkMismatch) as refused:
        await make_eth_gateway(ETH_CHAIN_ID="1")
    assert "ETH_CHAIN_ID is 1" in refused.value.message and "31337" in refused.value.message


async def test_a_wallet_that_lost_the_service_account_is_not_healthy(
        make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password)
    await gw.create_permission()  # resolves (creates) the service account
    _, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert health["checks"]["zcash"]["ok"] is True and health["checks"]["zcash"]["wallet_ready"] is True
    node.node.wallet.forget_accounts()  # the node came back with an empty wallet
    _, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    zcash = health["checks"]["zcash"]
    assert zcash["reachable"] is True and zcash["wallet_ready"] is False and zcash["ok"] is False
    assert health["status"] == "degraded"
