"""Exchange rates: what a rate provider reports, and the interface billing asks it through.

A rate is a Decimal exactly as the provider wrote it (units of a fiat currency per one whole unit of a crypto
asset), with where it came from and when it held. Billing converts with it (billing/pricing.py); the adapter that
reads a provider's ticker lives in chains/rates.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

RATE_UNAVAILABLE_CODE = "rate_unavailable"


@dataclass(frozen=True, slots=True)
class Rate:
    asset: str  # ZEC, ETH, a token's symbol
    currency: str  # USD
    rate: Decimal  # currency per one whole unit of the asset, > 0
    source: str  # the URL it was read from (never with credentials)
    time: datetime  # when it held: the provider's answer time


class RateProvider(Protocol):
    async def rate(self, asset: str, currency: str) -> Rate:
        """The current rate, or `ServiceUnavailable` (code `rate_unavailable`) when the provider is down, answers
        something unreadable, or its rate is too old: never a guess."""
        ...

    async def close(self) -> None:
        ...
