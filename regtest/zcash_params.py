"""Parameter checking as each server does it: zcashd wraps UniValue type errors as -1, jsonrpsee (Zallet, zebrad)
answers -32602 "Invalid params"; amounts follow zcashd's AmountFromValue."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from regtest.zcash_types import MAX_MONEY_ZAT, ZCASHD, RpcMethodError

U32_MAX = 2**32 - 1


def type_error(server: str, expected: str) -> RpcMethodError:
    if server == ZCASHD:
        return RpcMethodError(-1, f"JSON value is not {expected} as expected")
    return RpcMethodError(-32602, "Invalid params", f"expected {expected}")


def as_int(server: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise type_error(server, "an integer")
    return value


def as_u32(server: str, value: Any) -> int | None:
    """An optional unsigned 32-bit parameter of a jsonrpsee method (`Option<u32>`)."""
    if value is None:
        return None
    number = as_int(server, value)
    if not 0 <= number <= U32_MAX:
        raise RpcMethodError(-32602, "Invalid params", f"invalid value: integer `{number}`, expected u32")
    return number


def as_string(server: str, value: Any) -> str:
    if not isinstance(value, str):
        raise type_error(server, "a string")
    return value


def as_list(server: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise type_error(server, "an array")
    return value


def minconf(server: str, value: Any, default: int) -> int:
    confirmations = default if value is None else as_int(server, value)
    if confirmations < 0:
        raise RpcMethodError(-8, "Minimum number of confirmations cannot be less than 0")
    return confirmations


def amount_zat(value: Any) -> int:
    """zcashd's AmountFromValue: a number (or numeric string) with at most 8 decimals, within MoneyRange."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise RpcMethodError(-3, "Amount is not a number or string")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise RpcMethodError(-3, "Invalid amount") from None
    if not amount.is_finite():
        raise RpcMethodError(-3, "Invalid amount")
    scaled = amount.scaleb(8)
    if scaled != scaled.to_integral_value():
        raise RpcMethodError(-3, "Invalid amount")
    zat = int(scaled)
    if not 0 <= zat <= MAX_MONEY_ZAT:
        raise RpcMethodError(-3, "Amount out of range")
    return zat
