"""The configured funding sources, their assets, and the optional abilities each declared (checked once, here).

Services ask this registry for a source by name and for an ability by source name; an unconfigured source or an
ability a source lacks is a client-facing error, never an `isinstance` check scattered through the code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypeVar

from kernel.assets import Asset, AssetRegistry
from kernel.errors import InvalidAddress, InvalidRequest, NetworkMismatch, ServiceUnavailable
from kernel.funding import (
    ChecksNetwork,
    FundingSource,
    ReadsCardEvents,
    ReadsOutgoingTransfers,
    ReadsWalletBalance,
    RefundsPayments,
    ScansPayments,
    SendsRefunds,
    SignsSpendAuthorizations,
)

log = logging.getLogger(__name__)

NOT_CONFIGURED_RETRY_AFTER_SECONDS = 3600

AbilityT = TypeVar("AbilityT")


class FundingSources:
    def __init__(self, sources: Mapping[str, FundingSource], assets: AssetRegistry) -> None:
        self.all = dict(sources)
        self.assets = assets
        self.balances: dict[str, ReadsWalletBalance] = {
            name: source for name, source in self.all.items() if isinstance(source, ReadsWalletBalance)}
        self.refunds: dict[str, RefundsPayments] = {
            name: source for name, source in self.all.items() if isinstance(source, RefundsPayments)}
        self.authorizers: dict[str, SignsSpendAuthorizations] = {
            name: source for name, source in self.all.items() if isinstance(source, SignsSpendAuthorizations)}
        self.card_events: dict[str, ReadsCardEvents] = {
            name: source for name, source in self.all.items() if isinstance(source, ReadsCardEvents)}
        self.scanners: dict[str, ScansPayments] = {
            name: source for name, source in self.all.items() if isinstance(source, ScansPayments)}
        self.network_checkers: dict[str, ChecksNetwork] = {
            name: source for name, source in self.all.items() if isinstance(source, ChecksNetwork)}
        self.refund_senders: dict[str, SendsRefunds] = {
            name: source for name, source in self.all.items() if isinstance(source, SendsRefunds)}
        self.payout_readers: dict[str, ReadsOutgoingTransfers] = {
            name: source for name, source in self.all.items() if isinstance(source, ReadsOutgoingTransfers)}

    async def check_networks(self) -> None:
        """At start-up: each chain's node must serve the configured network (NetworkMismatch stops the start). A
        node that does not answer now is checked by its adapter on first contact."""
        for name, checker in self.network_checkers.items():
            try:
                await checker.check_network()
            except NetworkMismatch:
                raise
            except ServiceUnavailable as exc:
                log.warning("%s node not reachable at start-up (%s); its network is checked on first contact",
                            name, exc.code)

    def source(self, name: str) -> FundingSource:
        source = self.all.get(name)
        if source is None:
            raise ServiceUnavailable(f"{name} funding is not configured on this gateway",
                                     code=f"{name}_not_configured", retry_after=NOT_CONFIGURED_RETRY_AFTER_SECONDS)
        return source

    def ability(self, abilities: Mapping[str, AbilityT], name: str) -> AbilityT:
        """The source `name` seen through one of its declared abilities (503 when it is not configured)."""
        self.source(name)
        found = abilities.get(name)
        if found is None:
            raise InvalidRequest(f"{name} funding does not offer this", code="not_supported")
        return found

    def asset_for(self, funding_source: str, code: str) -> Asset:
        asset = self.assets.get(code)
        if asset is None or asset.funding_source != funding_source:
            accepted = ", ".join(a.code for a in self.assets.for_funding_source(funding_source))
            raise InvalidRequest(f"asset {code!r} is not accepted here (accepted: {accepted})", code="invalid_asset")
        return asset

    def confirmations_required(self, funding_source: str) -> int:
        source = self.all.get(funding_source)
        return source.min_confirmations if source is not None else 1

    def normalise_wallet(self, wallet: str) -> str:
        """A wallet as stored: normalised by the first configured source that accepts its format (addresses are
        case-sensitive on some chains and not on others), or as given when none knows it."""
        for source in self.all.values():
            try:
                return source.validate_address(wallet)
            except InvalidAddress:
                continue
        return wallet

    async def close(self) -> None:
        for source in self.all.values():
            await source.close()

