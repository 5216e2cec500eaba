"""Scanning a Zcash wallet for payments: one wallet-wide listing per pass, from a cursor, whatever the number of
permissions waiting for a payment. Billing matches what a scan reports to permissions by address, in SQL.

Each personality is a small strategy with two calls:
- `tip`: the wallet's newest block and a digest of the mempool (zcashd: `getbestblockhash`, `getblockcount` and
  `getrawmempool` in one batched request; Zallet: `getwalletstatus` (its fully scanned height) and, at the same
  time, zebrad's `getrawmempool`). When both match the cursor, nothing new can be found and the pass stops there.
- `scan`: everything received from the cursor's block on (less a few blocks of overlap), mined or in the mempool.
  - zcashd: `z_listunspent [0, maxconf, true]` with `maxconf` reaching back to that block, so notes already
    settled are not read again. It lists *unspent* notes: a known payment missing from it was either spent (an
    operator's sweep) or left the chain, which `gettransaction` tells apart (confirmations -1 once a transaction is
    neither in the chain nor in the mempool), for those few payments only.
  - Zallet: `z_listtransactions [account, start_height, null, offset, limit]`, page by page. It lists
    transactions, spent or not, so a payment swept out of the wallet before any pass saw it is still found.
  The window also reaches back to the oldest known payment still waiting, and after a reorganisation (the
  cursor's block is no longer the one at its height) to REORG_DEPTH blocks before the cursor.

Amounts: zcashd's `z_listunspent` has only the ZEC `amount` (read as Decimal, exactly, into zatoshis); Zallet's
`value` is in zatoshis. Outputs to internal (change) addresses are never payments.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from chains.jsonrpc import JsonRpcClient, RpcError, RpcUnavailable
from chains.zcash_address import ZcashNetwork, decode_address, encode_unified
from kernel.errors import InvalidAddress
from kernel.funding import (
    BlockRef,
    ChainTip,
    KnownPayment,
    Payment,
    ReceivedPayment,
    ScanCursor,
    ScanResult,
    ScanWindow,
)

ZEC = "ZEC"
ZATOSHIS_PER_ZEC = 10**8
MAX_CONFIRMATIONS = 9_999_999
# Each scan reads the last blocks before its cursor again: a wallet may list a block's notes a moment after the
# node announced the block, and reading a few blocks twice costs little.
OVERLAP_BLOCKS = 3
# How far back a scan reads once it sees a reorganisation: zcashd never reorganises more than 99 blocks.
REORG_DEPTH = 100
LISTING_PAGE = 500  # z_listtransactions rows per call


def mempool_digest(txids: Sequence[str]) -> str:
    """A short digest of the mempool's transaction ids, in any order."""
    return hashlib.sha256("\n".join(sorted(txids)).encode()).hexdigest()


def canonical_address(text: str, network: ZcashNetwork) -> str:
    """An address as permissions store it. Wallets name the receiver an output reached: a bare Sapling address
    stands for the Sapling-only unified address PayGo asked for, which is its one-receiver encoding."""
    if not text.startswith("z"):  # unified and transparent addresses are stored as the wallet names them
        return text
    try:
        decoded = decode_address(text)
    except InvalidAddress:
        return text
    if decoded.kind == "sapling":
        return encode_unified(network, {"sapling": decoded.receivers["sapling"]})
    return text


def scan_start(cursor: ScanCursor | None, reorganised: bool, known: Sequence[KnownPayment]) -> int | None:
    """The lowest block height a scan must read (None: every block)."""
    if cursor is None:
        return None
    start = cursor.position.height + 1 - (REORG_DEPTH if reorganised else OVERLAP_BLOCKS)
    heights = [payment.block_height for payment in known if payment.block_height is not None]
    return max(0, min([start, *heights]))


def zec_to_zatoshis(value: Any) -> int:
    """A ZEC amount from a node (Decimal, never float) as an exact number of zatoshis."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise RpcUnavailable(f"amount is not a number: {value!r}")
    zatoshis = Decimal(value) * ZATOSHIS_PER_ZEC
    if zatoshis != zatoshis.to_integral_value():
        raise RpcUnavailable(f"amount {value} is not a whole number of zatoshis")
    return int(zatoshis)


def _zatoshis(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcUnavailable(f"{field} is not an integer number of zatoshis: {value!r}")
    return value


def _results(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, RpcError):
            raise reply
    return replies


def _height_of(tip: ChainTip, confirmations: int) -> int | None:
    return tip.block.height - confirmations + 1 if confirmations > 0 else None


async def _reorganised(chain: JsonRpcClient, cursor: ScanCursor | None) -> bool:
    """Whether the cursor's block is no longer the one at its height (or the chain got shorter than it)."""
    if cursor is None:
        return False
    try:
        return await chain.call("getblockhash", cursor.position.height) != cursor.position.hash
    except RpcError as error:
        if error.code == -8:  # "Block height out of range"
            return True
        raise


class ZcashdScan:
    """zcashd, or its wallet sidecar behind zebrad: one endpoint for wallet and chain."""

    def __init__(self, wallet: JsonRpcClient, network: ZcashNetwork) -> None:
        self.wallet = wallet
        self.network = network

    async def tip(self) -> ChainTip:
        best, height, mempool = _results(await self.wallet.batch(
            [("getbestblockhash", []), ("getblockcount", []), ("getrawmempool", [])]))
        return ChainTip(BlockRef(height, best), mempool_digest(mempool))

    async def scan(self, cursor: ScanCursor | None, tip: ChainTip, known: Sequence[KnownPayment]) -> ScanResult:
        start = scan_start(cursor, await _reorganised(self.wallet, cursor), known)
        max_confirmations = MAX_CONFIRMATIONS if start is None else max(tip.block.height - start + 1, 0)
        rows = await self.wallet.call("z_listunspent", 0, max_confirmations, True)
        found = [received for row in rows if (received := self._received(row, tip)) is not None]
        listed = {(received.payment.txid, received.payment.output_index) for received in found}
        found += await self._spent_or_gone(
            [payment for payment in known if (payment.txid, payment.output_index) not in listed], tip)
        return ScanResult(tuple(found), ScanCursor((tip.block,), tip.mempool), ScanWindow(start, tip.block.height))

    def _received(self, row: dict[str, Any], tip: ChainTip) -> ReceivedPayment | None:
        address = row.get("address")
        if not address or row.get("change"):
            return None  # received at an internal address: the wallet's own change
        confirmations = int(row["confirmations"])
        payment = Payment(txid=row["txid"], output_index=int(row["outindex"]),
                          amount_units=zec_to_zatoshis(row["amount"]), confirmations=confirmations,
                          block_height=_height_of(tip, confirmations), memo=row.get("memoStr"))
        return ReceivedPayment(payment, ZEC, address=canonical_address(address, self.network))

    async def _spent_or_gone(self, missing: list[KnownPayment], tip: ChainTip) -> list[ReceivedPayment]:
        """Known payments `z_listunspent` no longer lists: still there (spent by a sweep, with their current
        confirmations) unless `gettransaction` says their transaction left the chain and the mempool."""
        txids = list(dict.fromkeys(payment.txid for payment in missing))
        replies = dict(zip(txids, await self.wallet.batch([("gettransaction", [txid]) for txid in txids]),
                           strict=True))
        still_there = []
        for known in missing:
            reply = replies[known.txid]
            if isinstance(reply, RpcError) or int(reply["confirmations"]) < 0:
                continue  # not a wallet transaction any more (-5), or conflicted / expired (-1)
            confirmations = int(reply["confirmations"])
            payment = Payment(txid=known.txid, output_index=known.output_index, amount_units=known.amount_units,
                              confirmations=confirmations, block_height=_height_of(tip, confirmations),
                              block_hash=reply.get("blockhash"))
            still_there.append(ReceivedPayment(payment, known.asset))
        return still_there


class ZalletScan:
    """Zallet for the wallet (its account `account_uuid`), zebrad for the chain."""

    def __init__(self, wallet: JsonRpcClient, node: JsonRpcClient, network: ZcashNetwork, account_uuid: str) -> None:
        self.wallet = wallet
        self.node = node
        self.network = network
        self.account_uuid = account_uuid

    async def tip(self) -> ChainTip:
        """The newest block the wallet has fully scanned: while it catches up, its `wallet_tip` is ahead of what it
        can list, and a cursor put there would skip what it finds later."""
        status, mempool = await asyncio.gather(self.wallet.call("getwalletstatus"), self.node.call("getrawmempool"))
        wallet_tip = status["wallet_tip"]
        scanned = status.get("fully_synced_height", wallet_tip["height"])
        if scanned >= wallet_tip["height"]:
            block = BlockRef(wallet_tip["height"], wallet_tip["blockhash"])
        else:
            block = BlockRef(scanned, await self.node.call("getblockhash", scanned))
        return ChainTip(block, mempool_digest(mempool))

    async def scan(self, cursor: ScanCursor | None, tip: ChainTip, known: Sequence[KnownPayment]) -> ScanResult:
        start = scan_start(cursor, await _reorganised(self.node, cursor), known)
        found: list[ReceivedPayment] = []
        offset = 0
        while True:
            rows = await self.wallet.call("z_listtransactions", self.account_uuid, start, None, offset, LISTING_PAGE)
            for row in rows:
                found += self._received(row, tip)
            if len(rows) < LISTING_PAGE:
                break
            offset += len(rows)
        return ScanResult(tuple(found), ScanCursor((tip.block,), tip.mempool), ScanWindow(start, tip.block.height))

    def _received(self, row: dict[str, Any], tip: ChainTip) -> list[ReceivedPayment]:
        if row.get("expired_unmined"):
            return []  # never mined and never will be: not money
        mined_height = row.get("mined_height")
        confirmations = tip.block.height - mined_height + 1 if mined_height is not None else 0
        received = []
        for output in row["outputs"]:
            to_account = output.get("to_account", self.account_uuid)
            if output.get("is_change") or not output.get("to_address") or to_account != self.account_uuid:
                continue  # change, or an output this account sent to someone else
            payment = Payment(txid=row["txid"], output_index=int(output["output_index"]),
                              amount_units=_zatoshis(output["value"], "value"),
                              confirmations=max(confirmations, 0), block_height=mined_height,
                              memo=output.get("memo"))
            received.append(ReceivedPayment(payment, ZEC, address=canonical_address(output["to_address"],
                                                                                      self.network)))
        return received
