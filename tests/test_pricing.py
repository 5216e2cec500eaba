"""Fiat-priced permissions against the rate stand-in (shaped like Coinbase's spot-price API): a USD-priced ZEC
permission through a rate change inside and outside its lock window, the one rounding (down, in the payer's favour),
an Ethereum wallet signing a quote's amounts, and a provider that is down or stale (503 with Retry-After, never a
guess). Every scenario ends with the ledger recomputed."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from billing.ledger import recompute_balances
from billing.pricing import to_asset_units
from regtest.rates import RunningRates, start_rate_standin
from tests.conftest import MIN_CONFIRMATIONS, Gateway, new_wallet
from tests.ethereum_fixtures import ONE_ETH, EthGateway


@pytest.fixture
async def rates() -> AsyncIterator[RunningRates]:
    running = await start_rate_standin()
    yield running
    await running.stop()


@pytest.fixture
async def priced(make_gateway: Callable[..., Any], zcash_regtest: tuple[Any, str], rates: RunningRates) -> Gateway:
    node, password = zcash_regtest
    return await make_gateway(node, password, RATE_PROVIDER_URL=rates.url)


async def usd_permission(gw: Gateway, amount: str = "20", rate: str = "5", **fields: Any) -> dict[str, Any]:
    return await gw.create_permission(amount, rate, pricing_currency="USD", **fields)


async def expire_quote(gw: Gateway, permission: dict[str, Any]) -> None:
    """Move the permission's quote past its lock window (the database clock is the one that counts)."""
    await gw.db.execute(
        "UPDATE rate_quotes SET locked_until = now() - interval '1 second' WHERE id = "
        "(SELECT quote_id FROM permission_pricing WHERE permission_id = $1)", permission["permission_id"])


def test_conversion_rounds_once_down_in_the_payers_favour() -> None:
    assert to_asset_units(2000, 2, Decimal("30.00"), 8) == 66_666_666  # $20 at $30/ZEC: 0.666666666… ZEC
    assert to_asset_units(2000, 2, Decimal("40"), 8) == 50_000_000
    assert to_asset_units(1, 2, Decimal("3000.00"), 18) == 3_333_333_333_333  # 1 cent of ETH, in wei
    rate = Decimal("0.1234567890123456789")  # every digit counts: the exact quotient, floored
    assert to_asset_units(2000, 2, rate, 8) == math.floor(Fraction(20) / Fraction(rate) * 10**8) == 16_200_000_145


async def test_a_usd_priced_zec_permission_through_a_rate_change_inside_the_window(priced: Gateway,
                                                                                   rates: RunningRates) -> None:
    permission = await usd_permission(priced)
    assert permission["asset"] == "ZEC" and permission["amount_to_pay"] == "0.66666666"
    assert permission["rate_per_hour"] == "0.16666666" and permission["max_streaming_hours"] == "4.000000"
    pricing = permission["pricing"]
    assert (pricing["pricing_currency"], pricing["requested_amount"], pricing["rate_per_hour"]) == ("USD", "20.00",
                                                                                                    "5.00")
    assert pricing["quote"]["rate"] == "30.00" and pricing["locked"] is True and pricing["requotes"] == 0
    assert pricing["quote"]["rate_source"] == f"{rates.url}/v2/prices/ZEC-USD/spot"
    assert pricing["quote"]["rate_time"] and pricing["amount_due"] == "0.66666666"
    assert permission["payment_uri"].startswith(f"zcash:{permission['payment_address']}?amount=0.66666666&memo=")

    rates.stand_in.set_rate("ZEC-USD", "40.00")  # inside the window the quote holds
    assert (await priced.jobs.requote()).requoted == []
    await priced.pay(permission["payment_address"], "0.66666666")
    await priced.mine(MIN_CONFIRMATIONS)
    active = await priced.verify(permission)
    assert active["status"] == "active" and active["remaining_amount"] == "0.66666666"
    assert active["pricing"]["quote"]["rate"] == "30.00"
    assert await recompute_balances(priced.db) == []


async def test_past_the_window_an_unpaid_permission_is_requoted(priced: Gateway, rates: RunningRates) -> None:
    permission = await usd_permission(priced)
    partly_paid = await usd_permission(priced)
    await priced.pay(partly_paid["payment_address"], "0.1")
    await priced.verify(partly_paid)  # seen: its payer acted on the quote, so it keeps it
    rates.stand_in.set_rate("ZEC-USD", "40.00")
    for each in (permission, partly_paid):
        await expire_quote(priced, each)
    summary = await priced.jobs.requote()
    assert [str(pid) for pid in summary.requoted] == [permission["permission_id"]]
    requoted = await priced.verify(permission)
    assert requoted["amount_to_pay"] == "0.50000000" and requoted["rate_per_hour"] == "0.12500000"
    assert requoted["pricing"]["quote"]["rate"] == "40.00" and requoted["pricing"]["requotes"] == 1
    assert requoted["pricing"]["locked"] is True
    assert requoted["payment_uri"].startswith(f"zcash:{permission['payment_address']}?amount=0.5&memo=")
    kept = await priced.verify(partly_paid)
    assert kept["amount_to_pay"] == "0.66666666" and kept["pricing"]["quote"]["rate"] == "30.00"
    await priced.pay(permission["payment_address"], "0.5")
    await priced.mine(MIN_CONFIRMATIONS)
    assert (await priced.verify(permission))["status"] == "active"
    assert await recompute_balances(priced.db) == []


def usd_body(**fields: Any) -> dict[str, Any]:
    return {"user_wallet_address": new_wallet(), "requested_amount": "20", "rate_per_hour": "5",
            "pricing_currency": "USD", **fields}


async def test_no_rate_or_a_stale_one_is_a_503_and_never_a_guess(priced: Gateway, rates: RunningRates) -> None:
    for failure in ("down", "stale"):
        rates.stand_in.fail_with(503 if failure == "down" else None)
        rates.stand_in.age(0 if failure == "down" else 600)
        response = await priced.client.post("/api/v1/zcash/permissions", json=usd_body())
        body = await response.json()
        assert response.status == 503 and body["error"]["code"] == "rate_unavailable", (failure, body)
        assert int(response.headers["Retry-After"]) > 0
        response = await priced.client.post("/api/v1/quotes", json={"asset": "ZEC", "pricing_currency": "USD"})
        assert response.status == 503 and int(response.headers["Retry-After"]) > 0
    assert await priced.db.fetchval("SELECT count(*) FROM permissions") == 0
    rates.stand_in.age(0)
    permission = await usd_permission(priced)
    await expire_quote(priced, permission)
    rates.stand_in.fail_with(503)
    summary = await priced.jobs.requote()  # a re-quote waits for a good rate
    assert summary.requoted == [] and summary.unavailable_pairs == ["ZEC-USD"]
    shown = await priced.verify(permission)
    assert shown["pricing"]["locked"] is False and shown["amount_to_pay"] == "0.66666666"
    assert await recompute_balances(priced.db) == []


async def test_pricing_requests_that_cannot_be_served(priced: Gateway, gw: Gateway) -> None:
    status, body = await gw.call("POST", "/api/v1/zcash/permissions", json=usd_body())
    assert (status, body["error"]["code"]) == (422, "pricing_not_configured")
    for fields, code in (({"pricing_currency": "EUR"}, "invalid_pricing_currency"),
                         ({"pricing_currency": "USD", "requested_amount": "20.001"}, "invalid_amount"),
                         ({"pricing_currency": "USD", "requested_amount": "0.0000000001"}, "invalid_amount"),
                         ({"pricing_currency": "USD", "requested_amount": "100000"}, "invalid_amount"),
                         ({"pricing_currency": "USD", "quote_id": "not-a-quote"}, "quote_not_found"),
                         ({"quote_id": "00000000-0000-0000-0000-000000000000"}, "invalid_request")):
        body = {"user_wallet_address": new_wallet(), "requested_amount": "20", "rate_per_hour": "5", **fields}
        status, answer = await priced.call("POST", "/api/v1/zcash/permissions", json=body)
        assert (status, answer["error"]["code"]) == (422, code), (fields, answer)
    status, quote = await priced.call("POST", "/api/v1/quotes", json={"asset": "zec", "pricing_currency": "usd"})
    assert status == 201 and quote["asset"] == "ZEC" and quote["rate"] == "30.00"
    permission = await usd_permission(priced, quote_id=quote["quote_id"])
    assert permission["pricing"]["quote"]["quote_id"] == quote["quote_id"]
    await priced.db.execute("UPDATE rate_quotes SET locked_until = now() - interval '1 second' WHERE id = $1",
                            quote["quote_id"])
    status, body = await priced.call("POST", "/api/v1/zcash/permissions", json=usd_body(quote_id=quote["quote_id"]))
    assert (status, body["error"]["code"]) == (409, "quote_expired")
    assert await recompute_balances(priced.db) == []


@pytest.fixture
async def eth_priced(make_eth_gateway: Callable[..., Any], rates: RunningRates) -> EthGateway:
    return await make_eth_gateway(RATE_PROVIDER_URL=rates.url)


async def test_an_ethereum_wallet_signs_the_amounts_of_a_locked_quote(eth_priced: EthGateway,
                                                                      rates: RunningRates) -> None:
    wallet = await eth_priced.anvil.new_account()
    status, quote = await eth_priced.gw.call("POST", "/api/v1/quotes", json={"asset": "ETH", "pricing_currency": "USD"})
    assert status == 201 and quote["rate"] == "3000.00"
    status, body = await eth_priced.gw.call(
        "GET", f"/api/v1/ethereum/permissions/typed-data?user_wallet_address={wallet.address}&requested_amount=30"
               "&rate_per_hour=15&pricing_currency=USD")
    assert (status, body["error"]["code"]) == (422, "quote_required")
    signed = await eth_priced.signed_body(wallet, "30", "15", pricing_currency="USD", quote_id=quote["quote_id"])
    rates.stand_in.set_rate("ETH-USD", "1500.00")  # the quote holds what the wallet signs
    status, created = await eth_priced.gw.call("POST", "/api/v1/ethereum/permissions", json={
        **signed, "pricing_currency": "USD", "quote_id": quote["quote_id"]})
    assert status == 201, created
    assert created["amount_to_pay"] == "0.010000000000000000" and created["rate_per_hour"] == "0.005000000000000000"
    assert created["pricing"]["quote"]["rate"] == "3000.00"
    assert created["payment_uri"] == (f"ethereum:{eth_priced.service_address}@31337?value={ONE_ETH // 100}")
    await eth_priced.gw.db.execute("UPDATE rate_quotes SET locked_until = now() - interval '1 second'")
    assert (await eth_priced.gw.jobs.requote()).requoted == []  # it signed these amounts: never re-quoted
    status, body = await eth_priced.gw.call("POST", "/api/v1/ethereum/permissions", json={
        **signed, "pricing_currency": "USD", "quote_id": quote["quote_id"]})
    assert (status, body["error"]["code"]) == (409, "quote_expired")
    assert await recompute_balances(eth_priced.gw.db) == []
