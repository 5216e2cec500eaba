"""Exchange rates from a public spot-price API shaped like Coinbase's:
`GET {RATE_PROVIDER_URL}/v2/prices/{ASSET}-{CURRENCY}/spot` → `{"data": {"amount": "33.41", "base": "ZEC",
"currency": "USD"}}`.

The amount is read as an exact Decimal (a string, or a JSON number parsed as Decimal). Its time is the answer's HTTP
`Date` header (when the provider produced it; a cache in between shows an old one), else the moment it arrived. A
rate older than `max_age_seconds`, a provider that does not answer within `timeout_seconds`, or an answer that is not
this shape is refused with 503 `rate_unavailable` and a Retry-After: the gateway never prices with a guess.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from kernel.errors import ServiceUnavailable
from kernel.rates import RATE_UNAVAILABLE_CODE, Rate

RETRY_AFTER_SECONDS = 10
MAX_RATE_DIGITS = 30


class SpotRateProvider:
    """Reads `/v2/prices/{ASSET}-{CURRENCY}/spot` under `base_url`; owns its HTTP session."""

    def __init__(self, base_url: str, *, max_age_seconds: int, timeout_seconds: float) -> None:
        self.base_url = URL(base_url)
        self.max_age_seconds = max_age_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def rate(self, asset: str, currency: str) -> Rate:
        url = self.base_url / "v2" / "prices" / f"{asset}-{currency}" / "spot"
        source = str(url.with_user(None).with_query(None))
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                if response.status != 200:
                    raise _unavailable(f"the rate provider answered HTTP {response.status} for {asset}-{currency}")
                body = json.loads(await response.read(), parse_float=Decimal)
                date_header = response.headers.get("Date")
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as error:
            raise _unavailable(f"the rate provider is unavailable ({type(error).__name__})") from error
        rate = _amount(body, asset, currency)
        received = datetime.now(UTC)
        time = _http_date(date_header) or received
        age = (received - time).total_seconds()
        if age > self.max_age_seconds:
            raise _unavailable(f"the {asset}-{currency} rate is {int(age)} s old (at most {self.max_age_seconds} s)")
        return Rate(asset=asset, currency=currency, rate=rate, source=source, time=min(time, received))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _amount(body: Any, asset: str, currency: str) -> Decimal:
    data = body.get("data") if isinstance(body, dict) else None
    raw = data.get("amount") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("base") != asset or data.get("currency") != currency
            or isinstance(raw, bool) or not isinstance(raw, (str, int, Decimal)) or len(str(raw)) > MAX_RATE_DIGITS):
        raise _unavailable(f"the rate provider's answer is not a {asset}-{currency} spot price")
    try:
        rate = Decimal(raw)
    except InvalidOperation:
        raise _unavailable(f"the rate provider's {asset}-{currency} amount is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise _unavailable(f"the rate provider's {asset}-{currency} amount is not a positive number")
    return rate


def _http_date(header: str | None) -> datetime | None:
    if header is None:
        return None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unavailable(message: str) -> ServiceUnavailable:
    return ServiceUnavailable(message, code=RATE_UNAVAILABLE_CODE, retry_after=RETRY_AFTER_SECONDS)
