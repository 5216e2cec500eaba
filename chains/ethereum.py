"""The Ethereum funding source: ETH and ERC-20 payments to the gateway's service address, checked transaction by
transaction on a node through web3.py's AsyncWeb3.

Every permission is paid to the same service address, so a payment is found from the transaction hashes the user
(or billing, for payments it already knows) names in `PaymentTarget.hints`. A transaction pays a target when its
receipt has status 1, its block is still the canonical one at its height, and:
- for ETH: `to` is the service address, `from` the target's wallet, and it carries value (output index -1);
- for a token: a `Transfer` log of the token's contract from the wallet to the service address (logs marked
  `removed` are skipped). The output index is the log's position within the transaction's receipt, which, unlike
  the block-wide `logIndex`, does not change when a reorg puts the same transaction into another block, so the
  same transfer can never be recorded (and credited) twice.
A transaction not mined yet, or no longer on the canonical chain, is not reported; billing then marks a payment it
had seen as orphaned. With `require_finalized`, a payment in a block above the `finalized` one is reported with
fewer confirmations than required, so billing waits for finality whatever the depth.

Refunds are paid by the operator, not by the gateway (it holds no key): `ReadsOutgoingTransfers` reports the
successful transfers *from* the service address (ETH sends found in block bodies, token `Transfer` logs found with
one `eth_getLogs`), for billing to recognise the operator's payouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from eth_typing import ChecksumAddress, HexAddress, HexStr
from eth_utils import is_hex_address, to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3Exception
from web3.types import TxData, TxReceipt

from kernel.assets import Asset
from kernel.errors import InvalidAddress, InvalidRequest, ServiceUnavailable
from kernel.funding import (
    FundingInstructions,
    FundingRequest,
    OutgoingTransfer,
    OutgoingTransfers,
    Payment,
    PaymentTarget,
    SourceStatus,
    WalletBalance,
)

logger = logging.getLogger(__name__)

UNAVAILABLE_CODE = "ethereum_node_unavailable"
RETRY_AFTER_UNAVAILABLE = 5
RETRY_AFTER_MISCONFIGURED = 60
DEFAULT_DISCOVERY_BLOCKS = 256  # how far back the watcher looks for payments nobody named (~50 min on mainnet)
RESCAN_BLOCKS = 12  # the newest blocks, fetched again on every discovery in case a reorg replaced them
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
    """What one `find_payments` call knows of the chain: the tip and the finalized height."""

    tip: int
    finalized: int | None


class EthereumFundingSource:
    """`FundingSource` for ETH and the configured ERC-20 tokens, paid to `service_address` on chain `chain_id`."""

    name = "ethereum"

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
        discovery_blocks: int = DEFAULT_DISCOVERY_BLOCKS,
    ) -> None:
        self.chain_id = chain_id
        self.service_address = normalise_address(service_address, "ETH_SERVICE_ADDRESS")
        self.min_confirmations = min_confirmations
        self.require_finalized = require_finalized
        self.tokens = {token.symbol: token for token in tokens}
        # No retries inside web3: a node that is down answers 503 with Retry-After at once.
        self._w3 = AsyncWeb3(AsyncHTTPProvider(
            rpc_url, request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=None,
        ))
        self._chain_checked = False
        self.discovery_blocks = discovery_blocks
        self._sends_by_block: dict[int, list[tuple[str, str]]] = {}  # block number → (sender, tx) sends to us

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
        """Payments in the transactions each target names (`hints`), and — for targets that ask to `discover` —
        in transactions from its payer to the service address in the last `discovery_blocks` blocks."""
        found: dict[str, list[Payment]] = {target.key: [] for target in targets}
        payers = {target.payer for target in targets if target.discover and target.payer}
        if not payers and not any(target.hints for target in targets):
            return found
        await self._check_chain()
        try:
            chain = await self._chain_state()
            discovered = await self._discover(payers, chain) if payers else {}
            hints = {
                target.key: tuple(dict.fromkeys(
                    [normalise_tx_hash(h) for h in target.hints]
                    + (sorted(discovered.get(target.payer or "", ())) if target.discover else [])))
                for target in targets
            }
            hashes = sorted({h for named in hints.values() for h in named})
            mined = await asyncio.gather(*(self._mined_transaction(h) for h in hashes))
        except NODE_FAILURES as error:
            raise _unavailable("finding payments", error) from error
        by_hash = dict(zip(hashes, mined, strict=True))
        for target in targets:
            for tx_hash in hints[target.key]:
                transaction = by_hash[tx_hash]
                if transaction is not None:
                    found[target.key].extend(self._payments_in(transaction, target, chain))
        return found

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

    async def chain_tip(self) -> int:
        await self._check_chain()
        try:
            return await self._w3.eth.block_number
        except NODE_FAILURES as error:
            raise _unavailable("reading the tip", error) from error

    async def outgoing_transfers(self, first_block: int, last_block: int) -> OutgoingTransfers:
        await self._check_chain()
        try:
            chain = await self._chain_state()
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
            chain = await self._chain_state()
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
            raise ServiceUnavailable(
                f"the Ethereum node is on chain {chain_id}, not ETH_CHAIN_ID {self.chain_id}; the operator must "
                "fix ETH_RPC_URL or ETH_CHAIN_ID", code=UNAVAILABLE_CODE, retry_after=RETRY_AFTER_MISCONFIGURED,
            )
        self._chain_checked = True

    async def _chain_state(self) -> _Chain:
        tip = await self._w3.eth.block_number
        if not self.require_finalized:
            return _Chain(tip, None)
        finalized = await self._w3.eth.get_block("finalized")
        return _Chain(tip, finalized["number"])

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

    async def _discover(self, payers: set[str], chain: _Chain) -> dict[str, set[str]]:
        """Transactions from each payer that may pay the service address, in the discovery window: token
        `Transfer` logs to it (one `eth_getLogs`), and plain ETH sends to it (block bodies, each fetched once and
        remembered; the newest RESCAN_BLOCKS are fetched again every time so that a reorg's blocks are seen).
        They are only candidates: `_mined_transaction` and `_payments_in` decide what they pay."""
        start = max(chain.tip - self.discovery_blocks + 1, 0)
        candidates: dict[str, set[str]] = {}
        if self.tokens:
            logs = await self._w3.eth.get_logs({
                "fromBlock": start, "toBlock": chain.tip,
                "address": [ChecksumAddress(HexAddress(HexStr(token.contract))) for token in self.tokens.values()],
                "topics": [TRANSFER_TOPIC, None, "0x" + "00" * 12 + self.service_address[2:].lower()],
            })
            for log in logs:
                sender = _topic_address(log["topics"][1])
                if sender in payers and not log.get("removed", False):
                    candidates.setdefault(sender, set()).add(log["transactionHash"].to_0x_hex())
        wanted = [n for n in range(start, chain.tip + 1)
                  if n not in self._sends_by_block or n > chain.tip - RESCAN_BLOCKS]
        blocks = await asyncio.gather(*(self._w3.eth.get_block(n, full_transactions=True) for n in wanted))
        for number, block in zip(wanted, blocks, strict=True):
            full: list[TxData] = [tx for tx in block["transactions"] if not isinstance(tx, bytes)]
            self._sends_by_block[number] = [
                (tx["from"], tx["hash"].to_0x_hex()) for tx in full if tx["to"] == self.service_address
            ]
        for number in [n for n in self._sends_by_block if n < start]:
            del self._sends_by_block[number]
        for sends in self._sends_by_block.values():
            for sender, tx_hash in sends:
                if sender in payers:
                    candidates.setdefault(sender, set()).add(tx_hash)
        return candidates

    def _payments_in(self, mined: tuple[Any, TxReceipt], target: PaymentTarget, chain: _Chain) -> list[Payment]:
        transaction, receipt = mined
        tx_hash = receipt["transactionHash"].to_0x_hex()
        if receipt["status"] != 1:
            logger.info("transaction %s reverted: it pays nothing", tx_hash)
            return []
        wallet = target.payer
        if target.asset in self.tokens:
            contract = self.tokens[target.asset].contract
            amounts = [
                (position, int.from_bytes(bytes(log["data"]), "big"))
                for position, log in enumerate(receipt["logs"])
                if not log.get("removed", False)
                and log["address"] == contract
                and len(log["topics"]) == 3
                and log["topics"][0] == TRANSFER_TOPIC
                and (wallet is None or _topic_address(log["topics"][1]) == wallet)
                and _topic_address(log["topics"][2]) == self.service_address
            ]
        elif transaction["to"] == self.service_address and (wallet is None or transaction["from"] == wallet):
            amounts = [(NATIVE_OUTPUT_INDEX, int(transaction["value"]))]
        else:
            amounts = []
        block_number = receipt["blockNumber"]
        confirmations = self._confirmations(block_number, chain)
        return [
            Payment(txid=tx_hash, output_index=index, amount_units=amount, confirmations=confirmations,
                    block_height=block_number, block_hash=receipt["blockHash"].to_0x_hex())
            for index, amount in amounts
            if amount > 0
        ]

    def _confirmations(self, block_number: int, chain: _Chain) -> int:
        confirmations = chain.tip - block_number + 1
        if chain.finalized is not None and block_number > chain.finalized:
            return min(confirmations, max(self.min_confirmations - 1, 0))
        return confirmations


def _topic_address(topic: bytes) -> str:
    return to_checksum_address(bytes(topic)[-20:])


def _unavailable(doing: str, error: BaseException) -> ServiceUnavailable:
    """Node failures as the client-facing error, naming what failed (never the node's URL, which may hold a key)."""
    reason = type(error).__name__ if isinstance(error, (aiohttp.ClientError, OSError, TimeoutError)) else str(error)
    return ServiceUnavailable(f"the Ethereum node is unavailable ({doing}): {reason}", code=UNAVAILABLE_CODE,
                              retry_after=RETRY_AFTER_UNAVAILABLE)
