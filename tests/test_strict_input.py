"""Strict, bounded input (issue 10, finding 4): every one of these was a 500 or was accepted laxly before. Huge
integers anywhere, one amount grammar, duplicate JSON keys, lengths checked before conversion, and no control
characters in text that reaches a terminal."""

from __future__ import annotations

from typing import Any

import pytest

from paygo.report import format_table
from tests.conftest import ADMIN_KEY, Gateway, new_wallet

HUGE = "9" * 5000  # past Python's 4,300-digit int() limit


async def raw_post(gw: Gateway, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
    response = await gw.client.post(path, data=body, headers={"Content-Type": "application/json", **headers})
    return response.status, await response.json()


@pytest.mark.parametrize("field", ["requested_amount", "rate_per_hour", "duration_days", "unknown_field"])
async def test_a_5000_digit_json_integer_in_any_field_is_422(gw: Gateway, field: str) -> None:
    fields = {"user_wallet_address": f'"{new_wallet()}"', "requested_amount": '"1"', "rate_per_hour": '"1"',
              field: HUGE}
    body = "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"
    status, answer = await raw_post(gw, "/api/v1/zcash/permissions", body.encode())
    assert status == 422, answer
    assert field in answer["error"]["message"]


async def test_huge_integers_elsewhere_are_422(gw: Gateway) -> None:
    status, answer = await raw_post(gw, "/api/v1/admin/vendors",
                                    f'{{"name": "v", "direct_charge_grace_seconds": {HUGE}}}'.encode(),
                                    **{"X-API-Key": ADMIN_KEY})
    assert status == 422 and "direct_charge_grace_seconds" in answer["error"]["message"]
    vendor = await gw.create_vendor()
    status, answer = await raw_post(gw, f"/api/v1/admin/vendors/{vendor['vendor_id']}/keys/rotate",
                                    f'{{"overlap_seconds": {HUGE}}}'.encode(), **{"X-API-Key": ADMIN_KEY})
    assert status == 422, answer
    status, answer = await raw_post(gw, "/api/v1/sessions/end", f'{{"session_code": {HUGE}}}'.encode())
    assert status == 422, answer


@pytest.mark.parametrize("query", [f"limit={HUGE}", f"cursor={HUGE}", "limit=\u0661\u0662", "limit=\uff11",
                                   f"from={HUGE}", f"wallet={HUGE}"])
async def test_huge_or_foreign_digit_query_parameters_are_422(gw: Gateway, query: str) -> None:
    vendor = await gw.create_vendor()
    status, answer = await gw.call("GET", f"/api/v1/vendor/sessions?{query}", api_key=vendor["api_key"])
    assert status == 422, answer
    status, answer = await gw.call("GET", f"/api/v1/vendor/webhooks/deliveries?{query.replace('from', 'limit')}",
                                   api_key=vendor["api_key"])
    assert status == 422, answer


async def test_a_huge_delivery_id_is_an_unknown_one(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    status, answer = await gw.call("POST", f"/api/v1/vendor/webhooks/deliveries/{HUGE}/redeliver",
                                   api_key=vendor["api_key"])
    assert (status, answer["error"]["code"]) == (404, "delivery_not_found")
    status, answer = await gw.call("POST", f"/api/v1/admin/webhooks/{HUGE}/redeliver", api_key=ADMIN_KEY)
    assert (status, answer["error"]["code"]) == (404, "delivery_not_found")


@pytest.mark.parametrize("amount", ["1e999999999", "1e-999999999", "1e3", "1_000", "\u0661\u0662", "\uff11\uff12",
                                    "Infinity", "0x10", "1,5", "- 1", HUGE])
async def test_amounts_follow_one_grammar_as_strings(gw: Gateway, amount: str) -> None:
    status, answer = await gw.call("POST", "/api/v1/zcash/permissions", json={
        "user_wallet_address": new_wallet(), "requested_amount": amount, "rate_per_hour": "1"})
    assert (status, answer["error"]["code"]) == (422, "invalid_amount"), answer
    assert answer["error"]["message"].startswith("requested_amount ")


@pytest.mark.parametrize("number", ["1e3", "1E+3", "1e999999999", "1e-999999999", "2.5e0", "-0.5", HUGE])
async def test_amounts_follow_one_grammar_as_json_numbers(gw: Gateway, number: str) -> None:
    body = f'{{"user_wallet_address": "{new_wallet()}", "requested_amount": "1", "rate_per_hour": {number}}}'
    status, answer = await raw_post(gw, "/api/v1/zcash/permissions", body.encode())
    assert (status, answer["error"]["code"]) == (422, "invalid_amount"), answer
    assert answer["error"]["message"].startswith("rate_per_hour ")
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 0


async def test_plain_json_numbers_are_still_amounts(gw: Gateway) -> None:
    body = f'{{"user_wallet_address": "{new_wallet()}", "requested_amount": 10, "rate_per_hour": 2.5}}'
    status, answer = await raw_post(gw, "/api/v1/zcash/permissions", body.encode())
    assert status == 201 and answer["rate_per_hour"] == "2.50000000"


async def test_balance_rate_and_typed_data_terms_follow_the_grammar(gw: Gateway) -> None:
    status, answer = await gw.call("GET", f"/api/v1/zcash/balance/{new_wallet()}?rate_per_hour=1e3")
    assert (status, answer["error"]["code"]) == (422, "invalid_amount")


async def test_duplicate_json_keys_are_refused(gw: Gateway) -> None:
    body = (f'{{"user_wallet_address": "{new_wallet()}", "requested_amount": "1", "requested_amount": "1000", '
            f'"rate_per_hour": "1"}}')
    status, answer = await raw_post(gw, "/api/v1/zcash/permissions", body.encode())
    assert (status, answer["error"]["code"]) == (422, "duplicate_key")
    assert "requested_amount" in answer["error"]["message"]
    status, answer = await raw_post(gw, "/api/v1/admin/vendors", b'{"name": "a", "name": "b"}',
                                    **{"X-API-Key": ADMIN_KEY})
    assert (status, answer["error"]["code"]) == (422, "duplicate_key")


async def test_deep_nesting_is_422(gw: Gateway) -> None:
    status, answer = await raw_post(gw, "/api/v1/zcash/permissions", b"[" * 30000 + b"]" * 30000)
    assert status == 422, answer


@pytest.mark.parametrize("name", ["evil\x1b[2J\x1b[31mvendor", "line\nbreak", "bidi \u202eoverride", "bell\x07"])
async def test_vendor_names_with_control_characters_are_refused(gw: Gateway, name: str) -> None:
    status, answer = await gw.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY, json={"name": name})
    assert status == 422 and answer["error"]["message"].startswith("name: "), answer
    assert await gw.db.fetchval("SELECT count(*) FROM vendors") == 0


async def test_unicode_names_without_control_characters_are_fine(gw: Gateway) -> None:
    status, answer = await gw.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY, json={"name": "Café ☕ 東京"})
    assert status == 201 and answer["name"] == "Café ☕ 東京"


def test_the_report_never_sends_a_stored_escape_to_the_terminal() -> None:
    table = format_table(["name"], [["evil\x1b[2Jvendor"]])
    assert "\x1b" not in table and "evil\\x1b[2Jvendor" in table
