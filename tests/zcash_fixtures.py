"""Pytest fixtures for the Zcash regtest stand-in, in both personalities, over real HTTP.

- `zcash_node`: a RunningNode per personality ("zcashd", then "zallet" with zebrad at `/node`);
- `zcash_control`: a `RegtestControl` driving that node as a test would (faucet payments, sends from wallet
  addresses and sweeps, mining, reorgs, Zallet's sync lock, the send failure hook);
- `zcash_source`: a `ZcashFundingSource` wired to that node (personality detected automatically).

Registered in tests/conftest.py with `pytest_plugins`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from chains.jsonrpc import JsonRpcClient
from chains.zcash import ZcashFundingSource
from chains.zcash_address import ZcashNetwork, decode_address, encode_sapling, encode_unified
from regtest.zcash_node import PERSONALITIES, RunningNode, start_zcash_regtest

ZIP317_MARGINAL_FEE_ZAT = 5_000

ZCASH_RPC_USER = "paygo-regtest"
ZCASH_MIN_CONFIRMATIONS = 2


@dataclass
class RegtestControl:
    """What a test does to the stand-in through its RPC: pay from the faucet, mine, reorganise, lock the wallet."""

    node: RunningNode
    personality: str
    wallet: JsonRpcClient
    chain: JsonRpcClient

    async def pay(self, address: str, amount: Decimal | str, memo: str | None = None) -> str:
        """Send `amount` ZEC from the faucet to `address` (into the mempool); returns the txid."""
        return await self.pay_many([(address, amount, memo)])

    async def pay_many(self, recipients: list[tuple[str, Decimal | str, str | None]]) -> str:
        """One faucet transaction with one output per recipient, in order (output index = position)."""
        amounts: list[dict[str, Any]] = []
        for address, amount, memo in recipients:
            recipient: dict[str, Any] = {"address": address, "amount": Decimal(amount)}
            if memo is not None:
                recipient["memo"] = memo.encode().hex()
            amounts.append(recipient)
        opid = await self.wallet.send("z_sendmany", "ANY_TADDR", amounts)
        return await self.wait_for_operation(opid)

    async def wait_for_operation(self, opid: str) -> str:
        """The txid of a finished z_sendmany operation (the stand-in finishes them at once; a real node needs
        polling)."""
        for _ in range(500):
            [status] = await self.wallet.call("z_getoperationstatus", [opid])
            if status["status"] == "success":
                return status["result"]["txid"]
            if status["status"] == "failed":
                raise AssertionError(f"operation {opid} failed: {status['error']}")
            await asyncio.sleep(0.01)
        raise AssertionError(f"operation {opid} did not finish")

    async def mine(self, blocks: int = 1) -> list[str]:
        return await self.chain.call("generate", blocks)

    async def invalidate(self, block_hash: str) -> None:
        await self.chain.call("invalidateblock", block_hash)

    async def reconsider(self, block_hash: str) -> None:
        await self.chain.call("reconsiderblock", block_hash)

    async def height(self) -> int:
        return await self.chain.call("getblockcount")

    async def set_wallet_syncing(self, code: int | None, calls: int | None = None) -> None:
        """Make wallet methods answer `code` (-28, -10 or -2), for the next `calls` calls or until cleared."""
        params: list[Any] = [code] if calls is None else [code, calls]
        await self.wallet.call("regtest_setwalletsyncing", *params)

    async def send_from(
        self, from_address: str, recipients: list[tuple[str, int]], *, minconf: int = 1,
        privacy_policy: str | None = None,
    ) -> str:
        """`z_sendmany` from a wallet address, paying (address, zatoshis) pairs with the node's fee; returns the
        operation id. minconf 1: the nodes' defaults (10; Zallet 3 for its change) would need more blocks."""
        amounts = [{"address": address, "amount": Decimal(value).scaleb(-8)} for address, value in recipients]
        params: list[Any] = [from_address, amounts, minconf]
        if privacy_policy is not None:
            params += [None, privacy_policy]
        return await self.wallet.send("z_sendmany", *params)

    async def sweep(self, address: str, to_address: str) -> str:
        """Move every confirmed note received at `address` to `to_address` (another wallet address), as an
        operator empties a per-payment address: one send from `address` of the notes' total minus the ZIP 317
        fee (5,000 zatoshis per input, at least 2 actions). Returns the txid."""
        notes = await self.unspent_at(address, minconf=1)
        total = sum(self.value_zat(row) for row in notes)
        fee = ZIP317_MARGINAL_FEE_ZAT * max(2, len(notes))
        opid = await self.send_from(address, [(to_address, total - fee)])
        return await self.wait_for_operation(opid)

    async def unspent_at(self, address: str, minconf: int = 0) -> list[dict[str, Any]]:
        """The unspent notes received at `address` (Zallet's filter is per account, so narrow it by receiver)."""
        rows = await self.wallet.call("z_listunspent", minconf, 9_999_999, False, [address])
        if self.personality == "zcashd":
            return rows
        receivers = decode_address(address).receivers
        received_at = {encode_sapling(ZcashNetwork.REGTEST, receivers["sapling"])} if "sapling" in receivers else set()
        if "orchard" in receivers:
            received_at.add(encode_unified(ZcashNetwork.REGTEST, {"orchard": receivers["orchard"]}))
        return [row for row in rows if row.get("address") in received_at]

    def value_zat(self, row: dict[str, Any]) -> int:
        """A z_listunspent row's value in zatoshis (zcashd `amountZat`, Zallet `valueZat`)."""
        return row["amountZat"] if self.personality == "zcashd" else row["valueZat"]

    async def fail_next_send(self, mode: str | None) -> None:
        """Arm the stand-in's `regtest_failnextsend` hook: "hang", "timeout", "crash_after_send", or None."""
        await self.wallet.call("regtest_failnextsend", mode)

    async def new_account(self) -> int | str:
        """A new wallet account, as z_getaddressforaccount takes it (zcashd number, Zallet UUID)."""
        if self.personality == "zcashd":
            return (await self.wallet.call("z_getnewaccount"))["account"]
        return (await self.wallet.call("z_getnewaccount", "test"))["account_uuid"]


@pytest.fixture(params=PERSONALITIES)
async def zcash_node(request: pytest.FixtureRequest) -> AsyncIterator[RunningNode]:
    password = secrets.token_urlsafe(16)
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword=password, personality=request.param)
    yield node
    await node.stop()


@pytest.fixture
async def zcash_control(zcash_node: RunningNode) -> AsyncIterator[RegtestControl]:
    password = zcash_node.rpcpassword
    wallet = JsonRpcClient(zcash_node.url, user=ZCASH_RPC_USER, password=password, retry_backoff=0.01)
    chain = JsonRpcClient(zcash_node.node_url, user=ZCASH_RPC_USER, password=password, retry_backoff=0.01)
    yield RegtestControl(zcash_node, zcash_node.node.personality, wallet, chain)
    await wallet.close()
    await chain.close()


@pytest.fixture
async def zcash_source(zcash_node: RunningNode) -> AsyncIterator[ZcashFundingSource]:
    source = ZcashFundingSource(
        wallet_url=zcash_node.url,
        node_url=zcash_node.node_url,
        user=ZCASH_RPC_USER,
        password=zcash_node.rpcpassword,
        network=ZcashNetwork.REGTEST,
        min_confirmations=ZCASH_MIN_CONFIRMATIONS,
        timeout=2.0,
        retry_backoff=0.01,
    )
    yield source
    await source.close()
