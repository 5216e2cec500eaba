"""Assets money is counted in, with their decimals. Every amount is an integer count of the smallest unit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset: `code` as shown to users, `decimals` of its smallest unit, and the funding source that carries it."""

    code: str
    decimals: int
    funding_source: str
    contract: str | None = None  # ERC-20 contract address (EIP-55), None for native coins and fiat

    @property
    def unit(self) -> int:
        """How many minor units make one whole unit (10**decimals)."""
        return 10**self.decimals


ZEC = Asset("ZEC", 8, "zcash")
ETH = Asset("ETH", 18, "ethereum")
USD = Asset("USD", 2, "card")


class AssetRegistry:
    """The assets this gateway is configured for, looked up by code (ERC-20 tokens are added from settings)."""

    def __init__(self, assets: list[Asset]) -> None:
        self._by_code = {asset.code: asset for asset in assets}

    def get(self, code: str) -> Asset | None:
        return self._by_code.get(code)

    def __getitem__(self, code: str) -> Asset:
        return self._by_code[code]

    def for_funding_source(self, funding_source: str) -> list[Asset]:
        return [a for a in self._by_code.values() if a.funding_source == funding_source]
