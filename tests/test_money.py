"""Exact money rules: parsing to minor units, formatting, hours, and the once-rounded charge."""

from decimal import Decimal

import pytest

from kernel.assets import ETH, USD, ZEC
from kernel.errors import InvalidAmount
from kernel.money import JsonNumber, format_amount, format_hours, hours_for, owed_for, parse_amount


@pytest.mark.parametrize(
    ("raw", "units"),
    [
        ("10", 1_000_000_000),
        (10, 1_000_000_000),
        (Decimal("2.5"), 250_000_000),
        ("0.00000001", 1),
        (Decimal("0.1"), 10_000_000),
        ("21000000.00000000", 2_100_000_000_000_000),
        (" 1.5 ", 150_000_000),
        (".5", 50_000_000),
        (JsonNumber("2.5"), 250_000_000),  # a JSON number, as the gateway decodes it: its text
    ],
)
def test_parse_zec(raw: object, units: int) -> None:
    assert parse_amount(raw, ZEC, "amount") == units


def test_point_one_plus_point_two_is_exact() -> None:
    total = parse_amount(Decimal("0.1"), ZEC, "a") + parse_amount(Decimal("0.2"), ZEC, "b")
    assert total == parse_amount("0.3", ZEC, "c") == 30_000_000
    assert format_amount(total, ZEC) == "0.30000000"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("0.000000001", "8 decimals"),
        ("0", "greater than zero"),
        ("-1", "greater than zero"),
        ("NaN", "plain decimal"),
        ("Infinity", "plain decimal"),
        ("ten", "plain decimal"),
        ("", "plain decimal"),
        # one grammar: ASCII digits and one optional point, nothing a Decimal or int() would also take
        ("1e3", "plain decimal"),
        ("1e-8", "plain decimal"),
        ("1e999999999", "plain decimal"),  # was a decimal overflow (500)
        ("1e-999999999", "plain decimal"),  # was 0 after rounding, past "> 0", then a database CHECK (500)
        (JsonNumber("1E+3"), "plain decimal"),
        ("1_000", "plain decimal"),
        ("\u0661\u0662", "plain decimal"),  # Arabic-Indic digits
        ("\uff11\uff12", "plain decimal"),  # full-width digits
        ("1.2.3", "plain decimal"),
        ("+1", "plain decimal"),
        ("5.", "plain decimal"),
        ("9" * 5000, "at most 100 characters"),  # checked before any conversion
        (JsonNumber("9" * 5000), "at most 100 characters"),
        (JsonNumber("-0.5"), "greater than zero"),
        (True, "decimal number"),
        (None, "decimal number"),
        ([1], "decimal number"),
    ],
)
def test_parse_refusals(raw: object, fragment: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        parse_amount(raw, ZEC, "requested_amount")
    assert fragment in caught.value.message
    assert caught.value.status == 422


def test_maximum() -> None:
    assert parse_amount("1000", ZEC, "a", maximum_units=100_000_000_000) == 100_000_000_000
    with pytest.raises(InvalidAmount, match=r"must not exceed 1000\.00000000 ZEC"):
        parse_amount("1000.00000001", ZEC, "a", maximum_units=100_000_000_000)


def test_wei_above_two_to_the_64() -> None:
    units = parse_amount("123456789.123456789123456789", ETH, "a")
    assert units == 123456789123456789123456789 > 2**64
    assert format_amount(units, ETH) == "123456789.123456789123456789"
    assert format_amount(1, ETH) == "0.000000000000000001"


def test_usd_cents() -> None:
    assert parse_amount("19.99", USD, "a") == 1999
    with pytest.raises(InvalidAmount):
        parse_amount("19.999", USD, "a")
    assert format_amount(-1999, USD) == "-19.99"


def test_hours_truncate_never_round_up() -> None:
    assert format_hours(hours_for(1_000_000_000, 250_000_000)) == "4.000000"
    assert format_hours(hours_for(10, 3)) == "3.333333"
    assert format_hours(hours_for(2, 3)) == "0.666666"
    assert format_hours(hours_for(0, 3)) == "0.000000"


def test_owed_is_rounded_once_down() -> None:
    rate = 250_000_000  # 2.5 ZEC per hour
    assert owed_for(rate, 3600) == rate
    assert owed_for(rate, 1) == 69444  # 69444.44… rounded down, in the payer's favour
    assert owed_for(3, 1199) == 0 and owed_for(3, 1200) == 1
    # Charging per tick as "owed now minus charged so far" sums to the once-rounded total, for any split.
    charged = 0
    for elapsed in (7, 61, 62, 1000, 1001, 3599, 3600, 5000):
        charged += owed_for(rate, elapsed) - charged
    assert charged == owed_for(rate, 5000)
    assert owed_for(rate, 0) == 0 and owed_for(rate, -5) == 0
