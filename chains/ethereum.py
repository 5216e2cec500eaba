"""The Ethereum funding source: ETH and ERC-20 payments to the gateway's service address, read from a node through
web3.py's AsyncWeb3.

Every permission is paid to the same service address, so payments are found two ways:
- the payment watcher scans every block once, from a cursor billing keeps in PostgreSQL (`chain_tip`, `scan`):
  token `Transfer` logs to the service address with `eth_getLogs` over block ranges, plain ETH sends from the block
  bodies (`to` is the service address), each checked against its receipt. A reorganisation is found by comparing
  the cursor's block hashes with the chain's: the scan walks back to the newest block still canonical and reads
  from there again. Billing decides, by the paying wallet, which permission a payment funds;
- an explicit verify names transaction hashes (`find_payments` with `PaymentTarget.hints`), which also re-checks
  payments billing already knows.
A transaction pays when its receipt has status 1, its block is still the canonical one at its height, and:
- for ETH: `to` is the service address and it carries value (output index -1);
- for a token: a `Transfer` log of the token's contract to the service address (logs marked `removed` are
  skipped). The output index is the log's position within the transaction's receipt, which, unlike the block-wide
  `logIndex`, does not change when a reorg puts the same transaction into another block, so the same transfer can
  never be recorded (and credited) twice.
With `require_finalized`, a payment in a block above the `finalized` one is reported with fewer confirmations than
required, so billing waits for finality whatever the depth. Payments moved inside a contract (smart wallets) are
not seen.

Refunds are paid by the operator, not by the gateway (it holds no key): `ReadsOutgoingTransfers` reports the
successful transfers *from* the service address (ETH sends found in block bodies, token `Transfer` logs found with
one `eth_getLogs`), for billing to recognise the operator's payouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from eth_typing import ChecksumAddress, HexAddress, HexStr
from eth_utils import is_hex_address, to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3Exception
from web3.types import TxData, TxReceipt

from kernel.assets import ETH, Asset
from kernel.errors import InvalidAddress, InvalidRequest, NetworkMismatch, ServiceUnavailable
from kernel.funding import (
    BlockRef,
    ChainTip,
    FundingInstructions,
    FundingRequest,
    KnownPayment,
    OutgoingTransfer,
    OutgoingTransfers,
    Payment,
    PaymentMatching,
    PaymentTarget,
    ReceivedPayment,
    ScanCursor,
    ScanResult,
    ScanWindow,
    SourceStatus,
    WalletBalance,
)

logger = logging.getLogger(__name__)

UNAVAILABLE_CODE = "ethereum_node_unavailable"
RETRY_AFTER_UNAVAILABLE = 5
DEFAULT_BLOCKS_PER_PASS = 500  # blocks one scan reads at most (a node that was down is caught up over several passes)
KEPT_BLOCKS = 64  # block hashes a cursor keeps to find a reorganisation (two epochs: finality on mainnet)
FIRST_SCAN_MARGIN_SECONDS = 60  # the first scan starts this long before the oldest waiting permission (clock skew)
MAX_REQUESTS_IN_FLIGHT = 8  # concurrent reads of blocks and receipts during a scan
NATIVE_OUTPUT_INDEX = -1  # the one "output" of a transaction's ETH value; token transfers use their log position
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
TRANSFER_TOPIC = HexBytes("0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
BALANCE_OF_ABI = [{
    "name": "balanceOf", "type": "function", "stateMutability": "view",
    "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}],
}]
# Failures that mean "the node did not give a usable answer" (down, slow, refusing, or garbage).
NODE_FAILURES: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError, OSError, Web3Exception)


def normalise_address(address: str, field: str = "address") -> str:
    """An Ethereum address in its EIP-55 form. All-lowercase (or all-uppercase) hex is accepted and normalised;
    mixed case must carry a correct EIP-55 checksum, since a wrong one means a mistyped address."""
    text = address.strip()
    if not is_hex_address(text):
        raise InvalidAddress(f"{field} {text!r} is not an Ethereum address (0x and 40 hex digits)",
                             details={"field": field})
    checksummed = to_checksum_address(text)
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and text != checksummed:
        raise InvalidAddress(f"{field} {text!r} has a wrong EIP-55 checksum (expected {checksummed})",
                             details={"field": field})
    return checksummed


def normalise_tx_hash(tx_hash: str) -> str:
    """A transaction hash as lowercase 0x-prefixed hex, or InvalidRequest."""
    text = tx_hash.strip().lower()
    if len(text) != 66 or not text.startswith("0x") or any(c not in "0123456789abcdef" for c in text[2:]):
        raise InvalidRequest(f"{tx_hash!r} is not a transaction hash (0x and 64 hex digits)", code="invalid_tx_hash")
    return text


@dataclass(frozen=True, slots=True)
class Token:
    """An ERC-20 token the gateway accepts: `symbol` is the asset code, `contract` its EIP-55 address."""

    symbol: str
    contract: str
    decimals: int

    def asset(self) -> Asset:
        return Asset(self.symbol, self.decimals, "ethereum", self.contract)


@dataclass(frozen=True, slots=True)
class _Chain:
    """What one read of payments knows of the chain: the tip and the finalized height."""

    tip: int
    finalized: int | None


@dataclass(frozen=True, slots=True)
class _Transfer:
    """Value one transaction moved to the service address: `output_index` -1 for ETH, else the log's position."""

    asset: str
    payer: str
    output_index: int
    amount: int


T = TypeVar("T")


class EthereumFundingSource:
    """`FundingSource` for ETH and the configured ERC-20 tokens, paid to `service_address` on chain `chain_id`."""

    name = "ethereum"
    matching = PaymentMatching.BY_PAYER

    def __init__(
        self,
        *,
        rpc_url: str,
        chain_id: int,
        service_address: str,
        min_confirmations: int,
        require_finalized: bool = False,
        tokens: Sequence[Token] = (),
        timeout: float = 10.0,
        blocks_per_pass: int = DEFAULT_BLOCKS_PER_PASS,
    ) -> None:
        self.chain_id = chain_id
        self.service_address = normalise_address(service_address, "ETH_SERVICE_ADDRESS")
        self.min_confirmations = min_confirmations
        self.require_finalized = require_finalized
        self.tokens = {token.symbol: token for token in tokens}
        self._tokens_by_contract = {token.contract: token for token in tokens}
        # No retries inside web3: a node that is down answers 503 with Retry-After at once.
        self._w3 = AsyncWeb3(AsyncHTTPProvider(
            rpc_url, request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=None,
        ))
        self._chain_checked = False
        self.blocks_per_pass = blocks_per_pass
        self._in_flight = asyncio.Semaphore(MAX_REQUESTS_IN_FLIGHT)

    # --- FundingSource ---------------------------------------------------------------------------------------

    def validate_address(self, address: str) -> str:
        return normalise_address(address, "user_wallet_address")

    def normalise_transaction_id(self, txid: str) -> str:
        return normalise_tx_hash(txid)

    def asset_contract(self, asset: str) -> str:
        """The contract of a token asset, or the zero address for ETH (as the signed authorization names it)."""
        return self.tokens[asset].contract if asset in self.tokens else ZERO_ADDRESS

    async def prepare_funding(self, request: FundingRequest) -> FundingInstructions:
        return FundingInstructions(payment_address=self.service_address, locator=self.asset_contract(request.asset))

    async def find_payments(self, targets: Sequence[PaymentTarget]) -> dict[str, list[Payment]]:
        """Payments of each target's asset from its payer in the transactions it names (`hints`)."""
        found: dict[str, list[Payment]] = {target.key: [] for target in targets}
        named = {target.key: list(dict.fromkeys(normalise_tx_hash(h) for h in target.hints)) for target in targets}
        hashes = sorted({tx_hash for hashes in named.values() for tx_hash in hashes})
        if not hashes:
            return found
        await self._check_chain()
        try:
            chain = await self._chain_state(await self._w3.eth.block_number)
            mined = await asyncio.gather(*(self._mined_transaction(h) for h in hashes))
        except NODE_FAILURES as error:
            raise _unavailable("finding payments", error) from error
        by_hash = dict(zip(hashes, mined, strict=True))
        for target in targets:
            for tx_hash in named[target.key]:
                transaction = by_hash[tx_hash]
                if transaction is not None:
                    found[target.key].extend(self._payments_in(transaction, target, chain))
        return found

    async def check_network(self) -> None:
        """At start-up: the node's chain id must be ETH_CHAIN_ID (NetworkMismatch names both)."""
        await self._check_chain()

    async def status(self) -> SourceStatus:
        try:
            chain_id = await self._w3.eth.chain_id
            block = await self._w3.eth.get_block("latest")
            syncing = await self._w3.eth.syncing
        except NODE_FAILURES as error:
            return SourceStatus(name=self.name, reachable=False, detail=str(error) or type(error).__name__)
        if chain_id != self.chain_id:
            return SourceStatus(name=self.name, reachable=False,
                                detail=f"the node is on chain {chain_id}, not ETH_CHAIN_ID {self.chain_id}")
        return SourceStatus(
            name=self.name,
            reachable=True,
            height=block["number"],
            tip_hash=block["hash"].to_0x_hex(),
            synced=syncing is False,
            tip_age_seconds=max(int(time.time()) - int(block["timestamp"]), 0),
        )

    async def close(self) -> None:
        await self._w3.provider.disconnect()

    # --- ScansPayments -----------------------------------------------------------------------------------------

    async def chain_tip(self) -> ChainTip:
        await self._check_chain()
        try:
            block = await self._w3.eth.get_block("latest")
        except NODE_FAILURES as error:
            raise _unavailable("reading the tip", error) from error
        return ChainTip(BlockRef(block["number"], block["hash"].to_0x_hex()))

    async def scan(self, cursor: ScanCursor | None, tip: ChainTip, known: Sequence[KnownPayment],
                   waiting_since: datetime | None) -> ScanResult:
        """Payments to the service address in the blocks after the cursor's newest canonical block, at most
        `blocks_per_pass` of them, and the `known` payments whose block is still canonical. The first scan (no
        cursor) starts at the block of `waiting_since` (a minute earlier, for clock skew), or at the tip when
        nothing waits."""
        await self._check_chain()
        try:
            kept = await self._canonical_part(cursor.blocks) if cursor is not None else []
            if kept:
                start = kept[-1].height + 1
            elif cursor is not None:  # deeper than every kept block: read that far back again
                logger.warning("Ethereum reorganisation deeper than the %d blocks the cursor keeps", KEPT_BLOCKS)
                start = max(min(cursor.blocks[0].height, tip.block.height) - KEPT_BLOCKS, 0)
            elif waiting_since is not None:
                start = await self._first_block_since(waiting_since, tip.block.height)
            else:
                start = tip.block.height + 1
            end = min(tip.block.height, start + self.blocks_per_pass - 1)
            chain = await self._chain_state(tip.block.height)
            read, found = await self._read_blocks(start, end, kept[-1] if kept else None, chain)
            found += await self._still_canonical(known, found, start, end, [*kept, *read], chain)
        except NODE_FAILURES as error:
            raise _unavailable("scanning blocks", error) from error
        blocks = [*kept, *read][-KEPT_BLOCKS:] or [tip.block]
        return ScanResult(tuple(found), ScanCursor(tuple(blocks)), ScanWindow(start, end),
                          caught_up=end >= tip.block.height)

    # --- balance -----------------------------------------------------------------------------------------------

    async def wallet_balance(self, address: str, asset: str) -> WalletBalance:
        """The balance of `asset` (minor units) held by `address`, with the block number it was read at."""
        wallet = normalise_address(address)
        await self._check_chain()
        try:
            block_number = await self._w3.eth.block_number
            if asset in self.tokens:
                token = self._w3.eth.contract(address=ChecksumAddress(HexAddress(HexStr(self.tokens[asset].contract))),
                                              abi=BALANCE_OF_ABI)
                units = await token.functions.balanceOf(wallet).call(block_identifier=block_number)
            else:
                units = await self._w3.eth.get_balance(ChecksumAddress(HexAddress(HexStr(wallet))),
                                                       block_identifier=block_number)
        except NODE_FAILURES as error:
            raise _unavailable("reading a balance", error) from error
        return WalletBalance(units=int(units), block_number=block_number)

    # --- transfers from the service address (ReadsOutgoingTransfers) -----------------------------------------

    async def tip_height(self) -> int:
        await self._check_chain()
        try:
            return await self._w3.eth.block_number
        except NODE_FAILURES as error:
            raise _unavailable("reading the tip", error) from error

    async def outgoing_transfers(self, first_block: int, last_block: int) -> OutgoingTransfers:
        await self._check_chain()
        try:
            chain = await self._chain_state(await self._w3.eth.block_number)
            last = min(last_block, chain.tip)
            found: list[OutgoingTransfer] = []
            if first_block > last:
                return OutgoingTransfers(chain.tip, found)
            if self.tokens:
                logs = await self._w3.eth.get_logs({
                    "fromBlock": first_block, "toBlock": last,
                    "address": [ChecksumAddress(HexAddress(HexStr(token.contract))) for token in self.tokens.values()],
                    "topics": [TRANSFER_TOPIC, "0x" + "00" * 12 + self.service_address[2:].lower()],
                })
                found += [transfer for log in logs if (transfer := self._token_transfer(log, chain)) is not None]
            blocks = await asyncio.gather(*(self._w3.eth.get_block(number, full_transactions=True)
                                            for number in range(first_block, last + 1)))
            sends: list[TxData] = [tx for block in blocks for tx in block["transactions"]
                                   if not isinstance(tx, bytes) and tx["from"] == self.service_address
                                   and tx["value"] > 0 and tx["to"] is not None]
            receipts = await asyncio.gather(*(self._w3.eth.get_transaction_receipt(tx["hash"]) for tx in sends))
        except NODE_FAILURES as error:
            raise _unavailable("reading transfers from the service address", error) from error
        for tx, receipt in zip(sends, receipts, strict=True):
            if receipt["status"] == 1:
                found.append(self._native_transfer(tx, receipt, chain))
        found.sort(key=lambda transfer: (transfer.block_height, transfer.txid))
        return OutgoingTransfers(chain.tip, found)

    async def outgoing_transfers_in(self, txid: str) -> OutgoingTransfers:
        tx_hash = normalise_tx_hash(txid)
        await self._check_chain()
        try:
            chain = await self._chain_state(await self._w3.eth.block_number)
            mined = await self._mined_transaction(tx_hash)
        except NODE_FAILURES as error:
            raise _unavailable("reading a transaction", error) from error
        if mined is None or mined[1]["status"] != 1:
            return OutgoingTransfers(chain.tip, [])
        transaction, receipt = mined
        found = [transfer for log in receipt["logs"] if (transfer := self._token_transfer(log, chain)) is not None]
        if transaction["from"] == self.service_address and transaction["value"] > 0:
            found.append(self._native_transfer(transaction, receipt, chain))
        return OutgoingTransfers(chain.tip, found)

    def _token_transfer(self, log: Any, chain: _Chain) -> OutgoingTransfer | None:
        """A `Transfer` log of an accepted token from the service address, or None."""
        token = next((t for t in self.tokens.values() if t.contract == log["address"]), None)
        if (token is None or log.get("removed", False) or len(log["topics"]) != 3
                or log["topics"][0] != TRANSFER_TOPIC or _topic_address(log["topics"][1]) != self.service_address):
            return None
        return OutgoingTransfer(
            txid=log["transactionHash"].to_0x_hex(), asset=token.symbol, to_address=_topic_address(log["topics"][2]),
            amount_units=int.from_bytes(bytes(log["data"]), "big"), block_height=log["blockNumber"],
            confirmations=self._confirmations(log["blockNumber"], chain))

    def _native_transfer(self, transaction: Any, receipt: TxReceipt, chain: _Chain) -> OutgoingTransfer:
        return OutgoingTransfer(
            txid=receipt["transactionHash"].to_0x_hex(), asset="ETH", to_address=transaction["to"],
            amount_units=int(transaction["value"]), block_height=receipt["blockNumber"],
            confirmations=self._confirmations(receipt["blockNumber"], chain))

    # --- internals -----------------------------------------------------------------------------------------

    async def _check_chain(self) -> None:
        """Refuse to read payments from a node on another chain than the one wallets sign for (checked once)."""
        if self._chain_checked:
            return
        try:
            chain_id = await self._w3.eth.chain_id
        except NODE_FAILURES as error:
            raise _unavailable("reading the chain id", error) from error
        if chain_id != self.chain_id:
            raise NetworkMismatch(f"ETH_CHAIN_ID is {self.chain_id} but the node at ETH_RPC_URL serves chain "
                                  f"{chain_id}; the operator must fix one or the other")
        self._chain_checked = True

    async def _chain_state(self, tip: int) -> _Chain:
        if not self.require_finalized:
            return _Chain(tip, None)
        finalized = await self._w3.eth.get_block("finalized")
        return _Chain(tip, finalized["number"])

    async def _limited(self, call: Awaitable[T]) -> T:
        async with self._in_flight:
            return await call

    async def _all(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*(self._limited(call) for call in calls)))

    async def _block_hash(self, height: int) -> str | None:
        try:
            return (await self._w3.eth.get_block(height))["hash"].to_0x_hex()
        except BlockNotFound:
            return None

    async def _canonical_part(self, blocks: Sequence[BlockRef]) -> list[BlockRef]:
        """The cursor's blocks up to the newest one still on the canonical chain (all of them without a reorg;
        none when the reorganisation goes deeper than they reach), walking back a few at a time."""
        newest = len(blocks)
        step = 1
        while newest > 0:
            batch = blocks[max(newest - step, 0):newest]
            hashes = await self._all(self._block_hash(block.height) for block in batch)
            for offset in range(len(batch) - 1, -1, -1):
                if hashes[offset] == batch[offset].hash:
                    return list(blocks[:newest - len(batch) + offset + 1])
            newest -= len(batch)
            step = 16
        return []

    async def _first_block_since(self, moment: datetime, tip: int) -> int:
        """The first block mined at or after `moment` (less the margin), by bisection on block timestamps."""
        since = int(moment.timestamp()) - FIRST_SCAN_MARGIN_SECONDS
        low, high = 0, tip + 1
        while low < high:
            middle = (low + high) // 2
            if (await self._w3.eth.get_block(middle))["timestamp"] < since:
                low = middle + 1
            else:
                high = middle
        return low

    async def _read_blocks(self, start: int, end: int, parent: BlockRef | None,
                           chain: _Chain) -> tuple[list[BlockRef], list[ReceivedPayment]]:
        """Blocks `start`..`end` (each must follow the one before, by hash) and the payments to the service
        address in them: token logs from one `eth_getLogs`, ETH sends from the bodies, each checked on its
        receipt."""
        if start > end:
            return [], []
        bodies = await self._all(self._w3.eth.get_block(n, full_transactions=True) for n in range(start, end + 1))
        read: list[BlockRef] = []
        previous = parent.hash if parent is not None else None
        sends: dict[str, int] = {}  # transaction hash -> ETH value sent to the service address
        for body in bodies:
            if previous is not None and body["parentHash"].to_0x_hex() != previous:
                raise _chain_moved()
            read.append(BlockRef(body["number"], body["hash"].to_0x_hex()))
            previous = read[-1].hash
            for transaction in body["transactions"]:
                if not isinstance(transaction, bytes) and transaction["to"] == self.service_address \
                        and transaction["value"] > 0:
                    sends[transaction["hash"].to_0x_hex()] = int(transaction["value"])
        hash_at = {block.height: block.hash for block in read}
        if self.tokens:
            logs = await self._w3.eth.get_logs({
                "fromBlock": start, "toBlock": end,
                "address": [ChecksumAddress(HexAddress(HexStr(token.contract))) for token in self.tokens.values()],
                "topics": [TRANSFER_TOPIC, None, "0x" + "00" * 12 + self.service_address[2:].lower()],
            })
            for log in logs:
                if log.get("removed", False):
                    continue
                if hash_at.get(log["blockNumber"]) != log["blockHash"].to_0x_hex():
                    raise _chain_moved()
                sends.setdefault(log["transactionHash"].to_0x_hex(), 0)
        hashes = list(sends)
        receipts = await self._all(self._w3.eth.get_transaction_receipt(HexStr(h)) for h in hashes)
        found: list[ReceivedPayment] = []
        for tx_hash, receipt in zip(hashes, receipts, strict=True):
            block_hash = receipt["blockHash"].to_0x_hex()
            if hash_at.get(receipt["blockNumber"]) != block_hash:
                raise _chain_moved()
            confirmations = self._confirmations(receipt["blockNumber"], chain)
            found += [
                ReceivedPayment(Payment(txid=tx_hash, output_index=transfer.output_index,
                                        amount_units=transfer.amount, confirmations=confirmations,
                                        block_height=receipt["blockNumber"], block_hash=block_hash),
                                transfer.asset, payer=transfer.payer)
                for transfer in self._transfers(receipt, sends[tx_hash])
            ]
        return read, found

    async def _still_canonical(self, known: Sequence[KnownPayment], found: list[ReceivedPayment], start: int,
                               end: int, blocks: list[BlockRef], chain: _Chain) -> list[ReceivedPayment]:
        """The known payments this scan did not read again whose block is still the canonical one."""
        read_again = {(received.payment.txid, received.payment.output_index) for received in found}
        outside = [(payment.block_height, payment) for payment in known
                   if payment.block_height is not None and not start <= payment.block_height <= end
                   and (payment.txid, payment.output_index) not in read_again]
        hash_at: dict[int, str | None] = {block.height: block.hash for block in blocks}
        missing = sorted({height for height, _ in outside if height not in hash_at})
        hash_at.update(zip(missing, await self._all(self._block_hash(height) for height in missing), strict=True))
        return [
            ReceivedPayment(Payment(txid=payment.txid, output_index=payment.output_index,
                                    amount_units=payment.amount_units,
                                    confirmations=self._confirmations(height, _Chain(max(chain.tip, height),
                                                                                     chain.finalized)),
                                    block_height=height, block_hash=payment.block_hash), payment.asset)
            for height, payment in outside
            if hash_at.get(height) == payment.block_hash
        ]

    async def _mined_transaction(self, tx_hash: str) -> tuple[Any, TxReceipt] | None:
        """The transaction and its receipt if it is mined in a block that is still canonical, else None."""
        try:
            receipt = await self._w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
        if receipt["blockNumber"] is None:
            return None
        try:
            transaction = await self._w3.eth.get_transaction(HexStr(tx_hash))
            canonical = await self._w3.eth.get_block(receipt["blockNumber"])
        except (TransactionNotFound, BlockNotFound):
            return None
        if canonical["hash"] != receipt["blockHash"]:
            logger.info("transaction %s is in block %s, no longer canonical", tx_hash, receipt["blockHash"].to_0x_hex())
            return None
        return transaction, receipt

    def _transfers(self, receipt: TxReceipt, value: int) -> list[_Transfer]:
        """What the transaction moved to the service address: its ETH `value` when it was sent to it, and every
        `Transfer` of a configured token to it."""
        if receipt["status"] != 1:
            logger.info("transaction %s reverted: it pays nothing", receipt["transactionHash"].to_0x_hex())
            return []
        transfers = []
        if receipt["to"] == self.service_address and value > 0:
            transfers.append(_Transfer(ETH.code, receipt["from"], NATIVE_OUTPUT_INDEX, value))
        for position, log in enumerate(receipt["logs"]):
            token = self._tokens_by_contract.get(log["address"])
            if token is None or log.get("removed", False) or len(log["topics"]) != 3 \
                    or log["topics"][0] != TRANSFER_TOPIC or _topic_address(log["topics"][2]) != self.service_address:
                continue
            amount = int.from_bytes(bytes(log["data"]), "big")
            if amount > 0:
                transfers.append(_Transfer(token.symbol, _topic_address(log["topics"][1]), position, amount))
        return transfers

    def _payments_in(self, mined: tuple[Any, TxReceipt], target: PaymentTarget, chain: _Chain) -> list[Payment]:
        transaction, receipt = mined
        block_number = receipt["blockNumber"]
        return [
            Payment(txid=receipt["transactionHash"].to_0x_hex(), output_index=transfer.output_index,
                    amount_units=transfer.amount, confirmations=self._confirmations(block_number, chain),
                    block_height=block_number, block_hash=receipt["blockHash"].to_0x_hex())
            for transfer in self._transfers(receipt, int(transaction["value"]))
            if transfer.asset == target.asset and (target.payer is None or transfer.payer == target.payer)
        ]

    def _confirmations(self, block_number: int, chain: _Chain) -> int:
        confirmations = chain.tip - block_number + 1
        if chain.finalized is not None and block_number > chain.finalized:
            return min(confirmations, max(self.min_confirmations - 1, 0))
        return confirmations


def _chain_moved() -> ServiceUnavailable:
    return ServiceUnavailable("the Ethereum chain reorganised while it was read; the next pass reads it again",
                              code=UNAVAILABLE_CODE, retry_after=RETRY_AFTER_UNAVAILABLE)


def _topic_address(topic: bytes) -> str:
    return to_checksum_address(bytes(topic)[-20:])


def _unavailable(doing: str, error: BaseException) -> ServiceUnavailable:
    """Node failures as the client-facing error, naming what failed (never the node's URL, which may hold a key)."""
    reason = type(error).__name__ if isinstance(error, (aiohttp.ClientError, OSError, TimeoutError)) else str(error)
    return ServiceUnavailable(f"the Ethereum node is unavailable ({doing}): {reason}", code=UNAVAILABLE_CODE,
                              retry_after=RETRY_AFTER_UNAVAILABLE)
