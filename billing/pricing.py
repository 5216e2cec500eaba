"""Fiat-priced permissions: terms asked for in USD, converted to the funding asset at a quoted rate, locked for a
window, and re-quoted once the window has passed while nothing was paid.

The ledger stays in the funding asset's minor units: the conversion happens once, when the permission is created (or
re-quoted), and gives its `approved_amount` and `rate_per_hour` in the asset. The one rounding is down, to the
asset's minor unit, in the payer's favour: `units = floor(minor × 10^asset_decimals / (10^currency_decimals × rate))`,
computed on integers from the rate's exact ratio (no float, no intermediate rounding).

A quote (`rate_quotes`) is a rate from the provider with its source and time, locked for RATE_LOCK_SECONDS. Zcash
permissions may name a quote or get a fresh one; an Ethereum wallet signs the amounts its quote gave, so it names
the quote in the typed-data request and again in the create (a quote past its window is refused: 409
`quote_expired`), and its amounts are never re-quoted afterwards — they are what the wallet signed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

import asyncpg
from pydantic import TypeAdapter

from billing.sources import FundingSources
from billing.unit_of_work import Database
from kernel.assets import Asset
from kernel.errors import Conflict, InvalidAmount, InvalidRequest, PayGoError
from kernel.money import format_amount, parse_amount
from kernel.rates import Rate, RateProvider

log = logging.getLogger(__name__)

CURRENCIES = {"USD": 2}  # the fiat currencies a permission may be priced in, with their decimals


@dataclass(frozen=True, slots=True)
class Quote:
    id: UUID
    asset: str
    currency: str
    rate: Decimal
    source: str
    rate_time: datetime
    locked_until: datetime


QUOTE_COLUMNS = ", ".join(f.name for f in fields(Quote))


@dataclass(frozen=True, slots=True)
class Pricing:
    """A permission's fiat terms (minor units of `currency`) and the quote its asset amounts were converted at."""

    currency: str
    currency_decimals: int
    requested_amount: int
    rate_per_hour: int
    quote: Quote
    requotes: int

    @property
    def currency_asset(self) -> Asset:
        return fiat(self.currency)


@dataclass(frozen=True, slots=True)
class PricedTerms:
    """Terms converted at a quote: the asset amounts a permission is created with, and its fiat terms."""

    amount_units: int
    rate_units: int
    pricing: Pricing


def fiat(currency: str) -> Asset:
    return Asset(currency, CURRENCIES[currency], "fiat")


def to_asset_units(minor: int, currency_decimals: int, rate: Decimal, asset_decimals: int) -> int:
    """`minor` units of a currency in the asset's minor units at `rate` (currency per whole asset), rounded down."""
    numerator, denominator = rate.as_integer_ratio()
    return minor * 10**asset_decimals * denominator // (10**currency_decimals * numerator)


def currency_of(raw: str) -> str:
    currency = raw.strip().upper()
    if currency not in CURRENCIES:
        raise InvalidRequest(f"pricing_currency must be one of {', '.join(CURRENCIES)}",
                             code="invalid_pricing_currency")
    return currency


def convert(asset: Asset, currency: str, amount_minor: int, rate_minor: int, quote: Quote,
            maximum_units: int | None) -> PricedTerms:
    """Fiat terms (minor units of `currency`) converted at `quote`; refused when a converted amount is zero or above
    the asset's largest permission."""
    converted = []
    for field, minor in (("requested_amount", amount_minor), ("rate_per_hour", rate_minor)):
        units = to_asset_units(minor, CURRENCIES[currency], quote.rate, asset.decimals)
        if units <= 0:
            raise InvalidAmount(field, f"is less than one {asset.code} minor unit at {quote.rate} {currency}")
        if maximum_units is not None and units > maximum_units:
            raise InvalidAmount(field, f"is {format_amount(units, asset)} {asset.code} at {quote.rate} {currency}, "
                                       f"above {format_amount(maximum_units, asset)} {asset.code}")
        converted.append(units)
    pricing = Pricing(currency, CURRENCIES[currency], amount_minor, rate_minor, quote, requotes=0)
    return PricedTerms(converted[0], converted[1], pricing)


async def insert_quote(conn: asyncpg.Connection, rate: Rate, lock_seconds: int) -> Quote:
    record = await conn.fetchrow(
        f"""
        INSERT INTO rate_quotes (id, asset, currency, rate, source, rate_time, locked_until)
        VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
        RETURNING {QUOTE_COLUMNS}
        """,
        uuid4(), rate.asset, rate.currency, rate.rate, rate.source, rate.time, lock_seconds,
    )
    return Quote(**dict(record))


async def locked_quote(conn: asyncpg.Connection, quote_id: UUID, asset: str, currency: str) -> Quote:
    """A quote the request names: it must be of this pair and still within its lock window."""
    record = await conn.fetchrow(f"SELECT {QUOTE_COLUMNS}, locked_until > now() AS locked FROM rate_quotes "
                                 "WHERE id = $1", quote_id)
    if record is None or record["asset"] != asset or record["currency"] != currency:
        raise InvalidRequest(f"no {asset}-{currency} quote with this quote_id", code="quote_not_found")
    if not record["locked"]:
        raise Conflict("the quote's lock window has passed: ask for a new quote", code="quote_expired")
    return Quote(**{name: record[name] for name in (f.name for f in fields(Quote))})


async def insert_pricing(conn: asyncpg.Connection, permission_id: UUID, pricing: Pricing) -> None:
    await conn.execute(
        """
        INSERT INTO permission_pricing (permission_id, currency, currency_decimals, requested_amount, rate_per_hour,
                                        quote_id)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        permission_id, pricing.currency, pricing.currency_decimals, pricing.requested_amount, pricing.rate_per_hour,
        pricing.quote.id,
    )


# A permission's fiat terms with their quote (as JSON), if it was priced in a currency ($1: the permission); also read
# as part of the permission's whole state.
PRICING_OF = f"""
SELECT pp.currency, pp.currency_decimals, pp.requested_amount, pp.rate_per_hour, pp.requotes,
       jsonb_build_object({", ".join(f"'{f.name}', q.{f.name}" for f in fields(Quote))}) AS quote
  FROM permission_pricing pp JOIN rate_quotes q ON q.id = pp.quote_id
 WHERE pp.permission_id = $1
"""
_PRICING = TypeAdapter(Pricing)


async def pricing_of(conn: asyncpg.Connection, permission_id: UUID) -> Pricing | None:
    record = await conn.fetchrow(PRICING_OF, permission_id)
    return _PRICING.validate_python(dict(record)) if record is not None else None


@dataclass
class RequoteSummary:
    requoted: list[UUID]
    unavailable_pairs: list[str]


# Pending permissions whose quote's window has passed and that nothing reached (an orphaned payment counts as none).
_DUE = """
SELECT p.id, p.asset, p.asset_decimals, pp.currency, pp.currency_decimals, pp.requested_amount, pp.rate_per_hour
  FROM permission_pricing pp
  JOIN permissions p ON p.id = pp.permission_id
  JOIN rate_quotes q ON q.id = pp.quote_id
 WHERE p.status = 'pending_payment' AND p.expires_at > now() AND q.locked_until <= now()
   AND p.funding_source = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM payments x WHERE x.permission_id = p.id AND x.status <> 'orphaned')
   AND ($2::uuid IS NULL OR p.id = $2)
 ORDER BY p.id
"""


async def requote_due(db: Database, rates: RateProvider, *, funding_sources: Sequence[str], lock_seconds: int,
                      only: UUID | None = None) -> RequoteSummary:
    """Give every unpaid permission whose quote's window passed a new quote (one provider call per pair), each in
    its own transaction under the permission's row lock, checking again that nothing arrived meanwhile."""
    summary = RequoteSummary([], [])
    async with db.connection() as conn:
        due = await conn.fetch(_DUE, list(funding_sources), only)
    fresh: dict[tuple[str, str], Quote | None] = {}
    for row in due:
        pair = (row["asset"], row["currency"])
        if pair not in fresh:
            fresh[pair] = await _fresh_quote(db, rates, pair, lock_seconds, summary)
        quote = fresh[pair]
        if quote is None:
            continue
        amount = to_asset_units(row["requested_amount"], row["currency_decimals"], quote.rate, row["asset_decimals"])
        rate = to_asset_units(row["rate_per_hour"], row["currency_decimals"], quote.rate, row["asset_decimals"])
        if amount <= 0 or rate <= 0:
            log.warning("re-quote of %s skipped: %s-%s %s makes an amount of zero", row["id"], *pair, quote.rate)
            continue
        async with db.transaction() as work:
            # Lock first, then look: the statement below takes its snapshot after the lock, so it sees a payment
            # that a watcher or a verify (which lock the permission first) recorded meanwhile.
            await work.conn.execute("SELECT 1 FROM permissions WHERE id = $1 FOR UPDATE", row["id"])
            changed = await work.conn.fetchval(
                """
                WITH repriced AS (
                    UPDATE permissions p SET approved_amount = $2, rate_per_hour = $3, updated_at = now()
                     WHERE p.id = $1 AND p.status = 'pending_payment'
                       AND NOT EXISTS (SELECT 1 FROM payments x WHERE x.permission_id = p.id
                                        AND x.status <> 'orphaned')
                    RETURNING p.id
                )
                UPDATE permission_pricing pp SET quote_id = $4, requotes = pp.requotes + 1, updated_at = now()
                  FROM repriced r WHERE pp.permission_id = r.id
                RETURNING pp.permission_id
                """,
                row["id"], amount, rate, quote.id,
            )
            if changed is not None:
                work.changed(permissions=[changed])
                summary.requoted.append(changed)
    return summary


async def _fresh_quote(db: Database, rates: RateProvider, pair: tuple[str, str], lock_seconds: int,
                       summary: RequoteSummary) -> Quote | None:
    try:
        rate = await rates.rate(*pair)
    except PayGoError as error:
        log.warning("re-quote of %s-%s postponed: %s", *pair, error.message)
        summary.unavailable_pairs.append("-".join(pair))
        return None
    async with db.transaction() as work:
        return await insert_quote(work.conn, rate, lock_seconds)


class PricingService:
    """Quotes from the configured rate provider, terms priced in a fiat currency, and the re-quote job."""

    def __init__(self, db: Database, sources: FundingSources, rates: RateProvider | None, lock_seconds: int) -> None:
        self.db = db
        self.sources = sources
        self.rates = rates
        self.lock_seconds = lock_seconds

    async def quote_for(self, asset_code: str, currency: str) -> Quote:
        """A new quote of `asset_code` in `currency`, locked for the window (the `POST /api/v1/quotes` answer)."""
        asset = self.sources.assets.get(asset_code.strip().upper())
        if asset is None:
            raise InvalidRequest(f"asset {asset_code!r} is not accepted here", code="invalid_asset")
        return await self._new_quote(asset, self._currency(asset, currency))

    async def price(self, asset: Asset, currency: str, requested_amount: object, rate_per_hour: object,
                    quote_id: str | None, maximum_units: int | None, *, quote_required: bool) -> PricedTerms:
        """Terms asked for in `currency`, converted at the quote named (still locked), or at a new one."""
        code = self._currency(asset, currency)
        money = fiat(code)
        amount_minor = parse_amount(requested_amount, money, "requested_amount")
        rate_minor = parse_amount(rate_per_hour, money, "rate_per_hour")
        if quote_id is not None:
            async with self.db.connection() as conn:
                quote = await locked_quote(conn, _quote_id(quote_id), asset.code, code)
        elif quote_required:
            raise InvalidRequest("the wallet signs the amounts of one quote: ask for it (POST /api/v1/quotes) and "
                                 "name its quote_id here", code="quote_required")
        else:
            quote = await self._new_quote(asset, code)
        return convert(asset, code, amount_minor, rate_minor, quote, maximum_units)

    def _currency(self, asset: Asset, raw: str) -> str:
        currency = currency_of(raw)
        if asset.funding_source == "card" or asset.code == currency:
            raise InvalidRequest(f"{asset.code} permissions cannot be priced in {currency}",
                                 code="pricing_currency_not_supported")
        if self.rates is None:
            raise InvalidRequest("this gateway has no rate provider (RATE_PROVIDER_URL): ask in the asset itself",
                                 code="pricing_not_configured")
        return currency

    async def _new_quote(self, asset: Asset, currency: str) -> Quote:
        assert self.rates is not None  # _currency refused otherwise
        rate = await self.rates.rate(asset.code, currency)
        async with self.db.transaction() as work:
            return await insert_quote(work.conn, rate, self.lock_seconds)

    async def requote(self, *, only: UUID | None = None) -> RequoteSummary:
        """The re-quote job, for sources whose wallets sign no amounts (an Ethereum wallet signed its quote's)."""
        if self.rates is None:
            return RequoteSummary([], [])
        unsigned = [name for name in self.sources.all if name not in self.sources.authorizers]
        return await requote_due(self.db, self.rates, funding_sources=unsigned, lock_seconds=self.lock_seconds,
                                 only=only)


def _quote_id(raw: str) -> UUID:
    try:
        return UUID(raw.strip())
    except ValueError:
        raise InvalidRequest("quote_id is not a quote's id", code="quote_not_found") from None
