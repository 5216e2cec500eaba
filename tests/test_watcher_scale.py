"""The payment watcher at scale on the Zcash stand-in: 20,000 pending permissions credited within one pass, a failed
pass that leaves the next one no larger, a pass with nothing new that costs one request, a restart that resumes from
the stored cursor, and payments swept out of their address (Zallet before any pass saw them; zcashd after)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from billing.watcher import PaymentWatcher
from chains.zcash_scan import OVERLAP_BLOCKS
from kernel.funding import ScanWindow
from regtest.zcash_node import RunningNode, start_zcash_regtest
from tests.conftest import MIN_CONFIRMATIONS, RPC_USER, Gateway, new_wallet
from tests.pending_permissions import allocate_addresses, first_account, insert_pending_permissions
from tests.rpc_proxy import Exchange, RecordingProxy
from tests.zcash_fixtures import RegtestControl

PENDING = 20_000
ZAT = 100_000_000
TIP_METHODS = ["getbestblockhash", "getblockcount", "getrawmempool"]
MAX_REQUEST_BYTES = 1024**2  # what the stand-in (like zcashd) accepts


def methods(exchanges: list[Exchange]) -> list[list[str]]:
    return [[name for name, _ in exchange.calls] for exchange in exchanges]


def listing_of(exchanges: list[Exchange]) -> tuple[list[Any], list[Any]]:
    """The params and the rows of the pass's one z_listunspent."""
    [listing] = [exchange for exchange in exchanges if exchange.calls[0][0] == "z_listunspent"]
    return listing.calls[0][1], listing.result_of("z_listunspent")


async def status_of(gw: Gateway, permission: dict[str, Any]) -> dict[str, Any]:
    status, body = await gw.call("GET", f"/api/v1/zcash/permissions/{permission['permission_id']}",
                                 token=permission["permission_token"])
    assert status == 200, body
    return body


@pytest.fixture
async def proxied(make_gateway: Callable[..., Any],
                  zcash_regtest: tuple[RunningNode, str]) -> AsyncIterator[tuple[Gateway, RecordingProxy]]:
    """A gateway whose Zcash source talks to the stand-in through a recording proxy."""
    node, password = zcash_regtest
    proxy = await RecordingProxy(node.url).start()
    gw = await make_gateway(node, password, ZCASH_RPC_URL=proxy.url, ZCASH_NODE_RPC_URL=proxy.url)
    yield gw, proxy
    await proxy.close()


@pytest.fixture
async def zallet_gw(make_gateway: Callable[..., Any]) -> AsyncIterator[Gateway]:
    password = secrets.token_urlsafe(12)
    node = await start_zcash_regtest(rpcuser=RPC_USER, rpcpassword=password, personality="zallet")
    yield await make_gateway(node, password)
    await node.stop()


async def pay_each(gw: Gateway, addresses: list[tuple[str, str]]) -> None:
    """One faucet transaction paying 1 ZEC to each address, mined deep enough."""
    control = RegtestControl(gw.node, "zcashd", gw.wallet_rpc, gw.chain_rpc)
    await control.pay_many([(address, Decimal(1), None) for address, _ in addresses])
    await gw.mine(MIN_CONFIRMATIONS)


async def test_twenty_thousand_pending_are_credited_in_one_pass_and_a_failed_pass_never_grows_the_next(
    proxied: tuple[Gateway, RecordingProxy],
) -> None:
    gw, proxy = proxied
    await gw.mine(10)  # a chain longer than a scan's overlap, so that every window has the same depth
    await gw.create_permission("1", "1")  # the source creates the wallet's account
    addresses = await allocate_addresses(gw.wallet_rpc, await first_account(gw.wallet_rpc), PENDING)
    async with gw.db.acquire() as conn:
        ids = await insert_pending_permissions(conn, addresses, amount_zat=ZAT, wallet=new_wallet())
    watcher = PaymentWatcher(gw.database, gw.services.sources)
    first = await watcher.run()
    assert first.permissions_checked == PENDING + 1 and first.scanned["zcash"].start_height is None
    proxy.take()

    await pay_each(gw, addresses[:10])
    paid = await watcher.run()
    assert sorted(paid.activated) == sorted(ids[:10])
    normal = proxy.take()
    assert methods(normal) == [TIP_METHODS, ["getblockhash"], ["z_listunspent"]]
    normal_window, normal_rows = listing_of(normal)
    assert len(normal_rows) == 10  # what the new block brought, not what waits

    await pay_each(gw, addresses[10:60])
    proxy.failing = True
    failed = await watcher.run()
    assert failed.unreachable_sources == ["zcash"] and failed.activated == [] and "zcash" not in failed.scanned
    proxy.failing = False
    proxy.take()
    recovered = await watcher.run()
    assert sorted(recovered.activated) == sorted(ids[10:60])
    after_failure = proxy.take()
    assert methods(after_failure) == methods(normal)
    window, rows = listing_of(after_failure)
    assert window == normal_window  # the same window as after any pass: the failure did not move the cursor
    assert len(rows) == 60  # the 50 new notes, and the previous block's 10 still inside the overlap
    for before, after in zip(normal, after_failure, strict=True):
        assert after.request_bytes <= before.request_bytes + 8  # only the JSON-RPC ids may gain a digit
        assert after.request_bytes < MAX_REQUEST_BYTES

    idle = await watcher.run()
    assert methods(proxy.take()) == [TIP_METHODS] and idle.scanned == {} and idle.permissions_checked == PENDING - 59
    statuses = await gw.db.fetch("SELECT status, count(*) FROM permissions GROUP BY status ORDER BY status")
    assert {row["status"]: row["count"] for row in statuses} == {"active": 60, "pending_payment": PENDING - 59}


async def test_a_new_watcher_resumes_from_the_stored_cursor(gw: Gateway) -> None:
    await gw.mine(10)
    permission = await gw.create_permission("10", "2.5")
    await PaymentWatcher(gw.database, gw.services.sources).run()
    cursor_height = await gw.db.fetchval("SELECT max(height) FROM chain_cursor_blocks WHERE funding_source = 'zcash'")
    await gw.pay(permission["payment_address"], "10")
    await gw.mine(MIN_CONFIRMATIONS)

    restarted = PaymentWatcher(gw.database, gw.services.sources)  # a new process: nothing in memory
    summary = await restarted.run()
    assert summary.scanned["zcash"] == ScanWindow(cursor_height + 1 - OVERLAP_BLOCKS,
                                                  cursor_height + MIN_CONFIRMATIONS)
    assert summary.activated == [UUID(permission["permission_id"])]
    assert (await PaymentWatcher(gw.database, gw.services.sources).run()).scanned == {}  # nothing new since


async def test_zcashd_a_payment_swept_after_it_was_seen_is_still_credited(gw: Gateway) -> None:
    control = RegtestControl(gw.node, "zcashd", gw.wallet_rpc, gw.chain_rpc)
    permission = await gw.create_permission("10", "2.5")
    watcher = PaymentWatcher(gw.database, gw.services.sources)
    await control.pay(permission["payment_address"], "10")
    await control.mine(1)
    assert (await watcher.run()).activated == []
    assert (await status_of(gw, permission))["confirmations_seen"] == 1

    [(elsewhere, _)] = await allocate_addresses(gw.wallet_rpc, await first_account(gw.wallet_rpc), 1)
    await control.sweep(permission["payment_address"], elsewhere)  # the operator empties the address
    await control.mine(1)
    assert await control.unspent_at(permission["payment_address"]) == []
    assert (await watcher.run()).activated == [UUID(permission["permission_id"])]
    shown = await status_of(gw, permission)
    assert shown["remaining_amount"] == "10.00000000" and [p["status"] for p in shown["payments"]] == ["credited"]


async def test_zallet_a_payment_swept_before_any_pass_saw_it_is_credited(zallet_gw: Gateway) -> None:
    gw = zallet_gw
    control = RegtestControl(gw.node, "zallet", gw.wallet_rpc, gw.chain_rpc)
    permission = await gw.create_permission("10", "2.5")
    watcher = PaymentWatcher(gw.database, gw.services.sources)
    assert (await watcher.run()).scanned["zcash"].start_height is None  # the first pass reads the whole wallet
    await control.pay(permission["payment_address"], "10")
    await control.mine(1)
    [(elsewhere, _)] = await allocate_addresses(gw.wallet_rpc, await first_account(gw.wallet_rpc), 1)
    await control.sweep(permission["payment_address"], elsewhere)
    await control.mine(MIN_CONFIRMATIONS)
    assert await control.unspent_at(permission["payment_address"]) == []  # gone from the wallet's unspent notes

    summary = await watcher.run()
    assert summary.activated == [UUID(permission["permission_id"])]
    assert summary.scanned["zcash"].start_height is not None  # read from the cursor, not the whole wallet again
    shown = await status_of(gw, permission)
    assert shown["status"] == "active" and shown["amount_received"] == "10.00000000"
