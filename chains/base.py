"""The one interface every funding source implements: Zcash, Ethereum, and card credits (Stripe).

Billing never talks to a node or a processor directly; it asks a `FundingSource` to prepare where a payment
should go, to report the payments seen for some targets, and how its chain is doing. Results are small frozen
values; a payment carries its confirmations so billing (not the adapter) decides when it counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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
    # Also look for payments nobody named yet, where the source cannot list them by address (the watcher asks;
    # sources that list payments by address always report everything and ignore this).
    discover: bool = False


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

    @property
    def on_chain(self) -> bool:
        return self.confirmations > 0

    def counts_with(self, min_confirmations: int) -> bool:
        """Whether this payment is deep enough to be credited."""
        return self.confirmations >= max(min_confirmations, 1)


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


@runtime_checkable
class FundingSource(Protocol):
    """A funding source. Every method that reaches the network may raise `billing.errors.ServiceUnavailable`."""

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
