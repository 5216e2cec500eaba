"""Exact money arithmetic: parsing user amounts, converting to minor units, formatting, and the charge rule.

Amounts follow one grammar, whether sent as a JSON number or a string: ASCII digits with at most one decimal point
(`10`, `2.5`, `.5`), at most MAX_AMOUNT_LENGTH characters, checked on the text before any conversion. No sign, no
exponent, no `_`, no other digit scripts. A JSON number reaches this module as its text (`JsonNumber`), so no float
ever exists and `1e3` is refused as a number exactly as it is as a string. Storage and arithmetic use integers of
the asset's smallest unit.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, localcontext

from kernel.assets import Asset
from kernel.errors import InvalidAmount

SECONDS_PER_HOUR = 3600
HOURS_DECIMALS = 6  # hours are shown truncated to the microhour (3.6 ms), never rounded up
MAX_AMOUNT_LENGTH = 100
AMOUNT_PATTERN = r"[0-9]*\.?[0-9]+"  # also the API description's pattern for amount strings
_AMOUNT = re.compile(AMOUNT_PATTERN)


class JsonNumber:
    """A JSON number as its text. The gateway decodes request bodies so that fractions and very long integers stay
    text until the field that receives them applies its own grammar (amounts here; a strict integer field refuses
    it)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text if len(self.text) <= 40 else f"{self.text[:20]}…({len(self.text)} characters)"


def to_decimal(value: object, field: str) -> Decimal:
    """An amount (a JSON number, a string, or an int or Decimal from code) as an exact Decimal, if it follows the
    grammar."""
    if isinstance(value, bool) or value is None:
        raise InvalidAmount(field, "must be a decimal number or a string holding one")
    if isinstance(value, int):
        if value < 0:
            raise InvalidAmount(field, "must be greater than zero")
        text = str(value) if value.bit_length() <= 4 * MAX_AMOUNT_LENGTH else "0" * (MAX_AMOUNT_LENGTH + 1)
    elif isinstance(value, JsonNumber):
        text = value.text
    elif isinstance(value, Decimal):  # from our own code (settings defaults), never from a request
        text = format(value, "f") if value.is_finite() and value.adjusted() < MAX_AMOUNT_LENGTH else "NaN"
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidAmount(field, "must be a decimal number or a string holding one")
    if len(text) > MAX_AMOUNT_LENGTH:
        raise InvalidAmount(field, f"must be at most {MAX_AMOUNT_LENGTH} characters")
    if text.startswith("-") and _AMOUNT.fullmatch(text[1:]):
        raise InvalidAmount(field, "must be greater than zero")
    if not _AMOUNT.fullmatch(text):
        raise InvalidAmount(field, "must be a plain decimal number: ASCII digits with at most one decimal point "
                                   "(no sign, exponent, separators or other digit scripts)")
    return Decimal(text)


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
