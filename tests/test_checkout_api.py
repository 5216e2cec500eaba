"""The checkout over HTTP: the links in permission answers, the public checkout state through a payment's life, the
QR code endpoint, and the pages' HTML (status codes, Content-Security-Policy, no inline script, static files)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import segno

from tests.conftest import MIN_CONFIRMATIONS, Gateway, zcash_uri
from tests.stripe_fixtures import CardGateway
from tests.test_pages import url

PAGES = ("/", "/wallet", "/vendor", "/operator")


async def checkout(gw: Gateway, permission: dict[str, Any]) -> dict[str, Any]:
    status, body = await gw.call("GET", f"/api/v1/checkout/{permission['permission_id']}")
    assert status == 200, body
    return body


async def test_permission_answers_carry_the_checkout_page_and_the_payment_uri(gw: Gateway) -> None:
    created = await gw.create_permission("10", "2.5")
    page = url(gw, f"/pay/{created['permission_id']}")
    assert created["checkout_url"] == page
    assert created["payment_uri"] == zcash_uri(created, 10 * 10**8)
    assert created["payment_uri"].startswith(f"zcash:{created['payment_address']}?amount=10&memo=")
    await gw.pay(created["payment_address"], "4")
    shown = await gw.verify(created)
    assert shown["checkout_url"] == page and shown["payment_uri"] == zcash_uri(created, 6 * 10**8)  # still missing
    await gw.pay(created["payment_address"], "6")
    await gw.mine(MIN_CONFIRMATIONS)
    funded = await gw.verify(created)
    assert funded["status"] == "active"
    assert funded["payment_uri"] == zcash_uri(created, None)  # a top-up of any amount


async def test_card_answers_keep_stripes_checkout_url_and_have_no_payment_uri(card: CardGateway) -> None:
    created = await card.created("10.00", "2.50")
    session = card.stripe.sessions[card.session_id(created)]
    assert created["checkout_url"] == session["url"] and created["payment_uri"] is None
    view = await checkout(card.gw, created)
    assert (view["card_checkout_url"], view["payment_uri"], view["phase"]) == (session["url"], None, "waiting")


async def test_the_checkout_state_follows_a_payment_from_waiting_to_active(gw: Gateway) -> None:
    created = await gw.create_permission("10", "2.5")
    waiting = await checkout(gw, created)
    assert waiting["phase"] == "waiting" and waiting["amount_missing"] == "10.00000000"
    assert 0 < waiting["payment_window_seconds"] <= 24 * 3600
    assert waiting["payment_qr_url"] == f"/pay/{created['permission_id']}/qr.svg?amount=10.00000000"
    assert {"permission_token", "remaining_amount", "user_wallet_address"}.isdisjoint(waiting)
    assert waiting["payer_wallet"] is None  # only Ethereum names the wallet that must pay

    await gw.pay(created["payment_address"], "10")
    await gw.jobs.watch_payments()
    seen = await checkout(gw, created)
    assert (seen["phase"], seen["confirmations_seen"], seen["amount_received"]) == ("seen", 0, "10.00000000")
    assert seen["payment_uri"] is None and seen["amount_missing"] == "0.00000000"

    await gw.mine(1)
    await gw.jobs.watch_payments()
    assert (await checkout(gw, created))["phase"] == "confirming"
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.jobs.watch_payments()
    active = await checkout(gw, created)
    assert (active["phase"], active["amount_credited"], active["payment_window_seconds"]) == (
        "active", "10.00000000", None)
    assert active["payments"][0]["status"] == "credited"


async def test_a_late_payment_is_shown_and_not_credited(gw: Gateway) -> None:
    created = await gw.create_permission("1", "0.5")
    await gw.db.execute("UPDATE permissions SET expires_at = now() - interval '1 second' WHERE id = $1",
                        created["permission_id"])
    await gw.pay(created["payment_address"], "1")
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.verify(created)
    view = await checkout(gw, created)
    assert (view["phase"], view["amount_late"], view["amount_received"]) == ("expired", "1.00000000", "0.00000000")
    assert view["payment_uri"] is None and view["payment_window_seconds"] is None


@pytest.mark.parametrize("permission_id", ["not-a-uuid", "0f8fad5b-d9cb-469f-a165-70867728950e"])
async def test_an_unknown_permission_has_no_checkout(gw: Gateway, permission_id: str) -> None:
    status, body = await gw.call("GET", f"/api/v1/checkout/{permission_id}")
    assert (status, body["error"]["code"]) == (404, "permission_not_found")
    page = await gw.client.get(f"/pay/{permission_id}")
    assert page.status == 404 and page.content_type == "text/html" and "Not found" in await page.text()
    qr = await gw.client.get(f"/pay/{permission_id}/qr.svg")
    assert qr.status == 404


async def test_the_qr_code_is_an_svg_of_the_payment_uri(gw: Gateway) -> None:
    created = await gw.create_permission("10", "2.5")
    base = f"/pay/{created['permission_id']}/qr.svg"
    response = await gw.client.get(base + "?amount=2.5")
    assert response.status == 200 and response.content_type == "image/svg+xml"
    svg = await response.text()
    assert "<script" not in svg
    # the same symbol segno draws for the expected URI (the browser tests decode it from the screen)
    expected = segno.make(zcash_uri(created, 250_000_000), micro=False)
    assert svg.count("<path") == 1 and f'viewBox="0 0 {expected.symbol_size(border=4)[0]}' in svg
    for bad in ("0", "-1", "1.000000001", "ten"):
        status, body = await gw.call("GET", f"{base}?amount={bad}")
        assert status == 422 and body["error"]["code"] == "invalid_amount", (bad, body)


async def test_the_qr_code_of_a_card_permission_does_not_exist(card: CardGateway) -> None:
    created = await card.created("10.00", "2.50")
    status, body = await card.gw.call("GET", f"/pay/{created['permission_id']}/qr.svg")
    assert (status, body["error"]["code"]) == (404, "no_payment_uri")


async def test_pages_are_html_with_a_strict_policy_and_no_inline_script(gw: Gateway) -> None:
    created = await gw.create_permission("10", "2.5")
    for path in (*PAGES, f"/pay/{created['permission_id']}"):
        response = await gw.client.get(path)
        assert response.status == 200 and response.content_type == "text/html", path
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "default-src 'self'" in policy and "unsafe" not in policy
        assert response.headers["Referrer-Policy"] == "no-referrer"
        html = await response.text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path  # every script is a same-origin file
        assert not re.search(r"\son[a-z]+\s*=", html), path  # no inline event handler
        assert "https://" not in html and "http://" not in html, path
        assert created["permission_token"] not in html
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            assert (await gw.client.get(asset)).status == 200, asset


async def test_the_refresh_interval_is_bounded(gw: Gateway) -> None:
    created = await gw.create_permission("10", "2.5")
    for query, milliseconds in (("?refresh=0.5", 500), ("?refresh=0", 3000), ("?refresh=abc", 3000),
                                ("?refresh=NaN", 3000), ("", 3000)):
        html = await (await gw.client.get(f"/pay/{created['permission_id']}{query}")).text()
        assert f'data-refresh-ms="{milliseconds}"' in html, query


async def test_static_files_stay_inside_their_folder(gw: Gateway) -> None:
    assert (await gw.client.get("/static/app.css")).status == 200
    for path in ("/static/../pyproject.toml", "/static/%2e%2e/pyproject.toml", "/static/missing.js"):
        assert (await gw.client.get(path)).status in (403, 404), path
