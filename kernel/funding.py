"""The one interface every funding source implements (Zcash, Ethereum, card credits), and the optional abilities
some of them declare.

Billing never talks to a node or a processor directly; it asks a `FundingSource` to prepare where a payment
should go, to report the payments seen for some targets, and how its chain is doing. Results are small frozen
values; a payment carries its confirmations so billing (not the adapter) decides when it counts.

An ability only some sources have is a small Protocol of its own (`ReadsWalletBalance`, `RefundsPayments`,
`SignsSpendAuthorizations`, `ReadsCardEvents`, `ChecksNetwork`, `SendsRefunds`, `ReadsOutgoingTransfers`). The
wiring checks each source against them once, at start-up, and hands billing the abilities it found: nothing
downcasts a source to its concrete class.

A chain source that can list what its wallet received, wallet-wide, declares `ScansPayments`: the payment watcher
then asks it once per pass for what changed since a cursor (which billing stores), instead of asking about every
permission that waits for a payment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class FundingRequest:
    """What billing asks a funding source to prepare: a place for `amount_units` of `asset` to be paid to.

    `reference` is our own id (permission or direct charge), used as label, memo or idempotency key.
    """

    reference: str
    asset: str
    amount_units: int
    payer: str | None = None  # the wallet that must pay, where the source can tell who paid
    extra: dict[str, str] = field(default_factory=dict)  # source-specific options (e.g. card success_url)


@dataclass(frozen=True, slots=True)
class FundingInstructions:
    """Where and how to pay: an address on chain, or a URL for a card checkout. `locator` is stored and later
    passed back in a `PaymentTarget` (a diversifier index, a checkout session id)."""

    payment_address: str | None
    locator: str
    checkout_url: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentTarget:
    """Which payments to look for: those sent to `payment_address` (or matched by `locator`), optionally only
    from `payer`, optionally only in the transactions named in `hints` (tx hashes a user gave us)."""

    key: str  # the caller's id for this target; results are keyed by it
    asset: str
    payment_address: str | None
    locator: str
    payer: str | None = None
    hints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Payment:
    """Money seen on a funding source. `(txid, output_index)` identifies it uniquely within its source:
    a transaction output for Zcash, a log index or -1 (native value) for Ethereum, 0 for a card payment."""

    txid: str
    output_index: int
    amount_units: int
    confirmations: int  # 0 in the mempool; -1 when the source saw it leave the chain
    block_height: int | None = None
    block_hash: str | None = None
    memo: str | None = None

    def counts_with(self, min_confirmations: int) -> bool:
        """Whether this payment is deep enough to be credited."""
        return deep_enough(self.confirmations, min_confirmations)


def required_depth(min_confirmations: int) -> int:
    """The one confirmation-depth rule: at least the threshold, and never less than one (a mempool payment never
    counts). SQL that compares `payments.confirmations` is given this number."""
    return max(min_confirmations, 1)


def deep_enough(confirmations: int, min_confirmations: int) -> bool:
    return confirmations >= required_depth(min_confirmations)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How a funding source is doing, for health checks and for the watcher's "new tip" trigger."""

    name: str
    reachable: bool
    height: int | None = None
    tip_hash: str | None = None
    synced: bool | None = None  # None: the source cannot say
    tip_age_seconds: int | None = None
    detail: str | None = None
    wallet_ready: bool | None = None  # False: the node answers but cannot receive (its wallet lost our account)


@runtime_checkable
class FundingSource(Protocol):
    """A funding source. Every method that reaches the network may raise `kernel.errors.ServiceUnavailable`."""

    name: str  # "zcash", "ethereum", "card"
    min_confirmations: int

    def validate_address(self, address: str) -> str:
        """The address normalised for storage, or `InvalidAddress` (malformed, or for another network)."""
        ...

    async def prepare_funding(self, request: FundingRequest) -> FundingInstructions:
        """Where this payment should go. Never moves money, so it is safe to retry."""
        ...

    async def find_payments(self, targets: Sequence[PaymentTarget]) -> dict[str, list[Payment]]:
        """Every payment seen for each target (keyed by `PaymentTarget.key`), confirmed or not. Batched."""
        ...

    async def status(self) -> SourceStatus:
        """Reachability, tip and sync state. Never raises: an unreachable source says so."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# --- optional abilities ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WalletBalance:
    """What a node can see of a wallet. `units` is None when the node cannot tell (an address index is disabled);
    `hidden` says part of the balance is invisible to it (shielded funds need the wallet's viewing key)."""

    units: int | None
    hidden: bool = False
    block_number: int | None = None


@runtime_checkable
class ReadsWalletBalance(Protocol):
    name: str

    async def wallet_balance(self, address: str, asset: str) -> WalletBalance:
        """The balance of `asset` the node sees for a (validated) address."""
        ...


@dataclass(frozen=True, slots=True)
class RefundReceipt:
    refund_id: str
    status: str  # the processor's: pending, succeeded, failed, ...
    amount_units: int


@runtime_checkable
class RefundsPayments(Protocol):
    name: str

    async def refund(self, payment_txid: str, amount_units: int, reference: str) -> RefundReceipt:
        """Give `amount_units` of a payment back; the same `reference` never refunds twice."""
        ...


@runtime_checkable
class SignsSpendAuthorizations(Protocol):
    """A chain whose wallets authorize a permission by signing its terms (Ethereum's EIP-712)."""

    name: str
    chain_id: int
    service_address: str

    def asset_contract(self, asset: str) -> str:
        """The contract address the signed terms name for `asset` (the zero address for the native coin)."""
        ...

    def normalise_transaction_id(self, txid: str) -> str:
        """A transaction id as stored, or `InvalidRequest` when malformed."""
        ...


@runtime_checkable
class ChecksNetwork(Protocol):
    """A chain adapter that asks its node which network it serves (asked at start-up, and on first contact when the
    node did not answer then)."""

    name: str

    async def check_network(self) -> None:
        """Raise `kernel.errors.NetworkMismatch` naming both networks when the node serves another one than the
        settings name (or, with none named, follow the node); `ServiceUnavailable` when the node does not answer."""
        ...


@runtime_checkable
class ReadsCardEvents(Protocol):
    """A card processor whose signed webhook events billing folds into permissions."""

    name: str

    def verified_event(self, payload: bytes, signature_header: str) -> dict[str, Any]:
        """The event in `payload` if `signature_header` signs it (else `InvalidSignature`), amounts as Decimal."""
        ...

    def payment_of_checkout(self, checkout: Mapping[str, Any]) -> Payment | None:
        """A paid checkout as the one payment it is; None until it is paid."""
        ...


# --- scanning a chain ----------------------------------------------------------------------------------------------

class PaymentMatching(StrEnum):
    """How the payments a scan finds are matched to what they pay: by the address they were paid to (each
    permission and direct charge has one of its own: Zcash), or by the wallet that paid (every permission is paid to
    one service address: Ethereum; the rule is billing's, see billing/chain_scan.py)."""

    BY_ADDRESS = "address"
    BY_PAYER = "payer"


@dataclass(frozen=True, slots=True)
class BlockRef:
    height: int
    hash: str


@dataclass(frozen=True, slots=True)
class ChainTip:
    """What a scan compares with its cursor to tell whether anything changed: the newest block the wallet has
    processed, and a digest of the mempool (None for a source that does not look at the mempool)."""

    block: BlockRef
    mempool: str | None = None


@dataclass(frozen=True, slots=True)
class ScanCursor:
    """Where the last complete scan stopped: the newest blocks it processed, oldest first (the last one is the
    position; the others let a reorg be found by hash), and the mempool digest it saw."""

    blocks: tuple[BlockRef, ...]
    mempool: str | None = None

    @property
    def position(self) -> BlockRef:
        return self.blocks[-1]

    def unchanged_at(self, tip: ChainTip) -> bool:
        """Nothing new can be found: same newest block, same mempool."""
        return tip.block == self.position and tip.mempool == self.mempool


@dataclass(frozen=True, slots=True)
class KnownPayment:
    """A payment billing recorded and still waits on (seen, not deep enough yet). Each scan reports it again,
    with its current confirmations, for as long as it is still on chain or in the mempool."""

    txid: str
    output_index: int
    asset: str
    amount_units: int
    block_height: int | None
    block_hash: str | None


@dataclass(frozen=True, slots=True)
class ReceivedPayment:
    """A payment a scan found, with what matching needs: the `address` it was paid to, or the `payer`."""

    payment: Payment
    asset: str
    address: str | None = None
    payer: str | None = None


@dataclass(frozen=True, slots=True)
class ScanWindow:
    """The blocks a scan read: from `start_height` (None: from the first block) to `end_height`."""

    start_height: int | None
    end_height: int


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan found: every payment received since the cursor, in chain order, and every known payment
    still there (each with its current confirmations; a known payment left out is gone), the cursor to store once
    they are applied, and whether blocks remain for the next pass (a pass reads a bounded number of blocks)."""

    payments: tuple[ReceivedPayment, ...]
    cursor: ScanCursor
    window: ScanWindow
    caught_up: bool = True


@runtime_checkable
class ScansPayments(Protocol):
    """A chain source whose wallet-wide payments can be read since a cursor, in a bounded number of calls per
    pass whatever the number of permissions waiting. Both methods may raise `kernel.errors.ServiceUnavailable`;
    a failed scan changes nothing, so the next one starts from the same cursor."""

    name: str
    min_confirmations: int
    matching: PaymentMatching

    async def chain_tip(self) -> ChainTip:
        """The wallet's newest block and mempool digest: one or two cheap calls, made every pass."""
        ...

    async def scan(self, cursor: ScanCursor | None, tip: ChainTip, known: Sequence[KnownPayment],
                   waiting_since: datetime | None) -> ScanResult:
        """Payments since `cursor` (None: the first scan; then from the block of `waiting_since`, the creation of
        the oldest permission still waiting, where the source can tell) and the `known` ones still there."""


class SendState(StrEnum):
    """What is known of a send: `sent` (its transaction exists), `pending` (the node's operation is still running),
    `not_sent` (certainly nothing was sent: refused, never reached the node, or its transaction can no longer be
    mined), `unknown` (no answer: it may or may not have been sent)."""

    SENT = "sent"
    PENDING = "pending"
    NOT_SENT = "not_sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class OutgoingPayment:
    """A payment the gateway sends from its own wallet: `amount_units` to `address`, with an optional text memo."""

    address: str
    amount_units: int
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class SendOutcome:
    state: SendState
    operation_id: str | None = None  # the node's id of an asynchronous send, when it gave one
    txid: str | None = None
    detail: str | None = None  # why it was not sent, or why its outcome is unknown

    @property
    def certain(self) -> bool:
        return self.state in (SendState.SENT, SendState.NOT_SENT)


@runtime_checkable
class SendsRefunds(Protocol):
    """A chain on which the gateway sends refunds itself, from its service wallet (Zcash). A send is never retried
    by the adapter: after an unknown outcome, `send_outcome` asks the node what happened before anything is sent
    again."""

    name: str

    def refund_fee_units(self, address: str) -> int:
        """The network fee a refund to this (validated) address pays, kept back from the amount sent."""
        ...

    def can_receive(self, address: str) -> bool:
        """Whether a (validated) address can receive a send from the service wallet."""
        ...

    async def chain_height(self) -> int:
        ...

    async def send(self, payment: OutgoingPayment) -> SendOutcome:
        """Send once. `unknown` when no answer came (a timeout, a dropped connection)."""
        ...

    async def send_outcome(self, payment: OutgoingPayment, *, operation_id: str | None,
                           since_height: int) -> SendOutcome:
        """What became of a send of `payment` started at `since_height`: from the node's operation (by id, or found
        among its operations by what it sends), else from the wallet's transactions since then. `not_sent` only when
        that is certain (the operation failed, or no transaction was found and one made then could no longer be
        mined)."""
        ...


@dataclass(frozen=True, slots=True)
class OutgoingTransfer:
    """Money the service address sent: `amount_units` of `asset` to `to_address` in transaction `txid`."""

    txid: str
    asset: str
    to_address: str
    amount_units: int
    block_height: int
    confirmations: int


@dataclass(frozen=True, slots=True)
class OutgoingTransfers:
    tip: int
    transfers: list[OutgoingTransfer]


@runtime_checkable
class ReadsOutgoingTransfers(Protocol):
    """A chain on which the operator pays refunds from the service address with their own tools (Ethereum: the
    gateway holds no key) and the gateway recognises those transfers."""

    name: str
    min_confirmations: int

    async def tip_height(self) -> int:
        ...

    async def outgoing_transfers(self, first_block: int, last_block: int) -> OutgoingTransfers:
        """Every successful transfer from the service address in these blocks (of the native coin and of each
        accepted token), with its confirmations."""
        ...

    async def outgoing_transfers_in(self, txid: str) -> OutgoingTransfers:
        """The transfers from the service address in one (mined, canonical, successful) transaction."""
        ...
