"""Exact money arithmetic: parsing user amounts, converting to minor units, formatting, and the charge rule.

Amounts enter as JSON numbers or strings and are parsed straight to Decimal (the request body is decoded with
`parse_float=Decimal`, so no float ever exists). Storage and arithmetic use integers of the asset's smallest unit.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext

from kernel.assets import Asset
from kernel.errors import InvalidAmount

SECONDS_PER_HOUR = 3600
HOURS_DECIMALS = 6  # hours are shown truncated to the microhour (3.6 ms), never rounded up


def to_decimal(value: object, field: str) -> Decimal:
    """A JSON number (int or Decimal) or a decimal string as an exact Decimal; anything else is refused."""
    if isinstance(value, bool) or value is None:
        raise InvalidAmount(field, "must be a decimal number or a string holding one")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 100:
            raise InvalidAmount(field, "must be a decimal number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise InvalidAmount(field, f"{value!r} is not a decimal number") from None
    else:
        raise InvalidAmount(field, "must be a decimal number or a string holding one")
    if not number.is_finite():
        raise InvalidAmount(field, "must be a finite number")
    return number


def parse_amount(value: object, asset: Asset, field: str, maximum_units: int | None = None) -> int:
    """Parse a positive amount of `asset` to minor units; more decimals than the asset has is an error."""
    number = to_decimal(value, field)
    if number <= 0:
        raise InvalidAmount(field, "must be greater than zero")
    with localcontext() as ctx:
        ctx.prec = 200
        scaled = number.scaleb(asset.decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidAmount(field, f"{asset.code} has {asset.decimals} decimals; {value} has more")
        units = int(scaled)
    if maximum_units is not None and units > maximum_units:
        raise InvalidAmount(field, f"must not exceed {format_amount(maximum_units, asset)} {asset.code}")
    return units


def format_amount(units: int, asset: Asset) -> str:
    """Minor units as an exact decimal string with all of the asset's decimals ("10.00000000")."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), asset.unit)
    if asset.decimals == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{asset.decimals}d}"


def hours_for(amount_units: int, rate_units_per_hour: int) -> Decimal:
    """How many hours `amount_units` buys at the rate, truncated to HOURS_DECIMALS (never promises too much)."""
    if rate_units_per_hour <= 0:
        return Decimal(0)
    micro_hours = amount_units * 10**HOURS_DECIMALS // rate_units_per_hour
    return Decimal(micro_hours).scaleb(-HOURS_DECIMALS)


def format_hours(hours: Decimal) -> str:
    """Hours as a plain decimal string with HOURS_DECIMALS places ("4.000000")."""
    return str(hours.quantize(Decimal(1).scaleb(-HOURS_DECIMALS), rounding=ROUND_DOWN))


def owed_for(rate_units_per_hour: int, elapsed_seconds: int) -> int:
    """What a session owes in total after `elapsed_seconds`: floor(rate × seconds / 3600), rounded once, down.

    Every tick and every end charges `owed_for(...) - already_charged`, so running one twice charges nothing more.
    """
    if elapsed_seconds <= 0:
        return 0
    return rate_units_per_hour * elapsed_seconds // SECONDS_PER_HOUR
