"""The payment watcher on anvil: every block read once from a cursor kept in PostgreSQL, so a payment more than 256
blocks old is found; a restart resumes from the cursor; a reorganisation across the cursor is found by hash; and
one payment funds exactly one permission: the oldest pending one of the wallet and asset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from billing.ledger import recompute_balances
from billing.watcher import PaymentWatcher, WatcherSummary
from kernel.funding import ScanWindow
from tests.ethereum_fixtures import ETH_MIN_CONFIRMATIONS, ONE_ETH, TOKEN_SYMBOL, Anvil, EthGateway


def watcher_of(eth_gw: EthGateway) -> PaymentWatcher:
    return PaymentWatcher(eth_gw.gw.database, eth_gw.gw.services.sources)


async def caught_up(watcher: PaymentWatcher) -> WatcherSummary:
    """Passes until the scan has read up to the tip; the last pass's summary (with every activation)."""
    activated: list[UUID] = []
    for _ in range(10):
        summary = await watcher.run()
        activated += summary.activated
        if "ethereum" not in summary.behind:
            summary.activated = activated
            return summary
    raise AssertionError("the scan did not catch up in 10 passes")


async def shown(eth_gw: EthGateway, permission: dict[str, Any]) -> dict[str, Any]:
    status, body = await eth_gw.gw.call("GET", f"/api/v1/ethereum/permissions/{permission['permission_id']}",
                                        token=permission["permission_token"])
    assert status == 200, body
    return body


async def cursor_blocks(eth_gw: EthGateway) -> list[tuple[int, str]]:
    rows = await eth_gw.gw.db.fetch(
        "SELECT height, block_hash FROM chain_cursor_blocks WHERE funding_source = 'ethereum' ORDER BY height")
    return [(row["height"], row["block_hash"]) for row in rows]


@asynccontextmanager
async def one_block(anvil: Anvil) -> AsyncIterator[None]:
    """Transactions sent inside go into one block, mined on leaving."""
    await anvil.rpc("evm_setAutomine", False)
    try:
        yield
        await anvil.mine(1)
    finally:
        await anvil.rpc("evm_setAutomine", True)


async def test_a_payment_older_than_256_blocks_is_found_and_a_restart_resumes_from_the_cursor(
    eth_gw: EthGateway,
) -> None:
    watcher = watcher_of(eth_gw)
    await watcher.run()  # nothing waits yet: the cursor starts at the tip
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5")
    tx_hash = await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(300)
    paid_in = (await eth_gw.anvil.receipt(tx_hash))["blockNumber"]
    assert await eth_gw.anvil.w3.eth.block_number - paid_in >= 300

    summary = await caught_up(watcher)
    assert summary.activated == [UUID(permission["permission_id"])]
    assert (await shown(eth_gw, permission))["remaining_amount"] == "1.000000000000000000"
    blocks = await cursor_blocks(eth_gw)
    assert blocks[-1][0] == await eth_gw.anvil.w3.eth.block_number and len(blocks) == 64
    for height, block_hash in blocks[-3:]:
        assert (await eth_gw.anvil.w3.eth.get_block(height))["hash"].to_0x_hex() == block_hash

    second = await eth_gw.create(wallet, "2", "0.5", asset="ETH")
    await eth_gw.pay_eth(wallet, 2 * ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    restarted = await watcher_of(eth_gw).run()  # a new process, the same database
    tip = await eth_gw.anvil.w3.eth.block_number
    assert restarted.scanned["ethereum"] == ScanWindow(blocks[-1][0] + 1, tip)  # each block read once
    assert restarted.activated == [UUID(second["permission_id"])]
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_a_reorganisation_across_the_cursor_is_found_by_hash(eth_gw: EthGateway) -> None:
    watcher = watcher_of(eth_gw)
    await watcher.run()  # the cursor starts at the tip
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5")
    await watcher.run()
    snapshot = await eth_gw.anvil.rpc("evm_snapshot")
    fork_point = await eth_gw.anvil.w3.eth.block_number
    await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(1)
    await watcher.run()
    seen = await shown(eth_gw, permission)
    assert [p["status"] for p in seen["payments"]] == ["seen"] and seen["confirmations_seen"] == 2
    assert (await cursor_blocks(eth_gw))[-1][0] == fork_point + 2

    assert await eth_gw.anvil.rpc("evm_revert", snapshot)  # the blocks the cursor ends with are gone
    await eth_gw.anvil.mine(4)  # another branch, longer than the one that held the payment
    rewound = await watcher.run()
    assert rewound.scanned["ethereum"] == ScanWindow(fork_point + 1, fork_point + 4)
    dropped = await shown(eth_gw, permission)
    assert dropped["status"] == "pending_payment" and [p["status"] for p in dropped["payments"]] == ["orphaned"]
    for height, block_hash in await cursor_blocks(eth_gw):
        assert (await eth_gw.anvil.w3.eth.get_block(height))["hash"].to_0x_hex() == block_hash

    await eth_gw.pay_eth(wallet, ONE_ETH)  # paid again on the new branch
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    assert (await watcher.run()).activated == [UUID(permission["permission_id"])]
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_one_payment_funds_the_oldest_pending_permission_of_the_wallet_and_asset(eth_gw: EthGateway) -> None:
    watcher = watcher_of(eth_gw)
    await watcher.run()  # the cursor starts at the tip
    wallet = await eth_gw.anvil.new_account()
    await eth_gw.token.mint(wallet.address, 10_000_000)
    older = await eth_gw.create(wallet, "1", "0.5")
    newer = await eth_gw.create(wallet, "1", "0.5")
    in_token = await eth_gw.create(wallet, "3", "1", asset=TOKEN_SYMBOL)  # another asset: never confused

    await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    assert (await watcher.run()).activated == [UUID(older["permission_id"])]
    assert (await shown(eth_gw, newer))["payments"] == []
    await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    assert (await watcher.run()).activated == [UUID(newer["permission_id"])]
    assert (await shown(eth_gw, in_token))["status"] == "pending_payment"

    # two payments in one block, before either is deep enough: the first covers the oldest, the second the next
    first, second = await eth_gw.create(wallet, "1", "0.5"), await eth_gw.create(wallet, "1", "0.5")
    async with one_block(eth_gw.anvil):
        paid_first = await eth_gw.pay_eth(wallet, ONE_ETH)
        paid_second = await eth_gw.pay_eth(wallet, ONE_ETH)
    await watcher.run()
    assert [p["txid"] for p in (await shown(eth_gw, first))["payments"]] == [paid_first]
    assert [p["txid"] for p in (await shown(eth_gw, second))["payments"]] == [paid_second]
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    assert sorted((await watcher.run()).activated) == sorted([UUID(first["permission_id"]),
                                                              UUID(second["permission_id"])])

    # with nothing pending, a payment funds nothing (a verify naming it can still credit it)
    await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    await watcher.run()
    assert await eth_gw.gw.db.fetchval("SELECT count(*) FROM payments") == 4
    assert await recompute_balances(eth_gw.gw.db) == []


async def test_a_payment_after_the_payment_window_is_recorded_late(eth_gw: EthGateway) -> None:
    watcher = watcher_of(eth_gw)
    await watcher.run()  # the cursor starts at the tip
    wallet = await eth_gw.anvil.new_account()
    permission = await eth_gw.create(wallet, "1", "0.5")
    due = await eth_gw.gw.db.fetchval("SELECT payment_due_at FROM permissions WHERE id = $1",
                                      permission["permission_id"])
    assert (await watcher.run(now=due)).expired_unpaid == [UUID(permission["permission_id"])]

    await eth_gw.pay_eth(wallet, ONE_ETH)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS - 1)
    await watcher.run(now=due)
    late = await shown(eth_gw, permission)
    assert late["status"] == "expired" and [p["status"] for p in late["payments"]] == ["late"]
    assert late["remaining_amount"] == "0.000000000000000000"
