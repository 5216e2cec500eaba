"""The pages in a real browser (Debian's Chromium through Playwright): the checkout page of each funding source, the
wallet view, the vendor and operator dashboards and the API docs, on a desktop and on a phone-sized screen.

Pages re-read their data every 0.2 s here (`?refresh=0.2`); the tests drive the payment watcher and the billing tick
themselves and wait for the page with Playwright's `expect`, never with a sleep.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from playwright.async_api import Page, expect

from tests.browser_fixtures import PHONE, OpenPage, decode_qr, has_no_horizontal_scroll, screenshot
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway, zcash_uri
from tests.ethereum_fixtures import CHAIN_ID, TOKEN_DECIMALS, TOKEN_SYMBOL, EthGateway
from tests.stripe_fixtures import CardGateway

FAST = "?refresh=0.2"
# EIP-681, as PayGo writes it: ethereum:<target>@<chain id>[/transfer]?<parameters>
EIP681 = re.compile(r"ethereum:(?P<target>0x[0-9a-fA-F]{40})@(?P<chain>[1-9][0-9]*)(?P<function>/transfer)?"
                    r"\?(?P<parameters>[A-Za-z0-9]+=[0-9A-Za-z]+(?:&[A-Za-z0-9]+=[0-9A-Za-z]+)*)")


def url(gw: Gateway, path: str) -> str:
    return str(gw.client.make_url(path))


async def open_checkout(open_page: OpenPage, gw: Gateway, permission: dict[str, Any], **viewport: Any) -> Page:
    page = await open_page(**viewport)
    await page.goto(url(gw, f"/pay/{permission['permission_id']}{FAST}"))
    await expect(page.locator("#checkout[data-phase]")).to_be_attached()
    return page


async def test_the_zcash_checkout_shows_the_amount_and_a_qr_code_of_its_zip321_uri(gw: Gateway,
                                                                                  open_page: OpenPage) -> None:
    permission = await gw.create_permission("10", "2.5")
    address = permission["payment_address"]
    page = await open_checkout(open_page, gw, permission)
    await expect(page.locator("#amount-to-pay")).to_have_text("10.00000000")
    await expect(page.locator("#phase")).to_have_text("Waiting for payment")
    await expect(page.locator("#countdown")).to_contain_text("Time left to pay: 23 h")
    expected = zcash_uri(permission, 10 * 10**8)
    assert await decode_qr(page, "#qr") == expected
    assert await page.locator("#wallet-link").get_attribute("href") == expected
    await expect(page.locator("#payment-address")).to_have_text(address)
    assert permission["checkout_url"] == url(gw, f"/pay/{permission['permission_id']}")
    assert permission["payment_uri"] == expected
    await screenshot(page, "checkout-zcash-waiting")


async def test_paying_through_the_stand_in_turns_the_page_active_without_a_reload(gw: Gateway,
                                                                                 open_page: OpenPage) -> None:
    permission = await gw.create_permission("10", "2.5")
    page = await open_checkout(open_page, gw, permission)
    await page.evaluate("window.notReloaded = true")

    await gw.pay(permission["payment_address"], "10")
    await gw.jobs.watch_payments()
    await expect(page.locator("#phase")).to_have_attribute("data-phase", "seen")
    await expect(page.locator("#phase-detail")).to_have_text(f"in the mempool: 0 of {MIN_CONFIRMATIONS} confirmations")
    await expect(page.locator("#payments")).to_contain_text("10.00000000 ZEC")
    await screenshot(page, "checkout-zcash-seen")

    await gw.mine(1)
    await gw.jobs.watch_payments()
    await expect(page.locator("#phase-detail")).to_have_text(f"1 of {MIN_CONFIRMATIONS} confirmations")
    await gw.mine(MIN_CONFIRMATIONS - 1)
    await gw.jobs.watch_payments()
    await expect(page.locator("#phase")).to_have_attribute("data-phase", "active")
    await expect(page.locator("#phase")).to_have_text("Paid: active")
    await expect(page.locator("#pay-chain")).to_be_hidden()
    assert await page.evaluate("window.notReloaded") is True
    await screenshot(page, "checkout-zcash-active")


async def test_a_partial_payment_shows_what_is_missing_and_an_over_payment_is_named(gw: Gateway,
                                                                                   open_page: OpenPage) -> None:
    permission = await gw.create_permission("10", "2.5")
    page = await open_checkout(open_page, gw, permission)
    await gw.pay(permission["payment_address"], "4")
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.jobs.watch_payments()
    await expect(page.locator("#phase")).to_have_attribute("data-phase", "partial")
    await expect(page.locator("#progress")).to_have_text("4.00000000 of 10.00000000 ZEC received, 6.00000000 missing")
    await expect(page.locator("#send-amount")).to_have_text("6.00000000")
    await expect(page.locator("#qr")).to_have_attribute("src", re.compile(r"amount=6\.00000000$"))
    assert await decode_qr(page, "#qr") == zcash_uri(permission, 6 * 10**8)
    await screenshot(page, "checkout-zcash-partial")

    await gw.pay(permission["payment_address"], "7")
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.jobs.watch_payments()
    await expect(page.locator("#phase")).to_have_attribute("data-phase", "active")
    await expect(page.locator("#notes")).to_contain_text("Over-payment: 1.00000000 ZEC more than asked")


async def test_the_ethereum_page_gives_valid_eip681_uris(eth_gw: EthGateway, open_page: OpenPage) -> None:
    account = await eth_gw.anvil.new_account()
    for created, target, function, amount in [
        (await eth_gw.create(account, "1.5", "0.25"), eth_gw.service_address, None, ("value", str(15 * 10**17))),
        (await eth_gw.create(account, "12.5", "2", asset=TOKEN_SYMBOL), eth_gw.token.address, "/transfer",
         ("uint256", str(125 * 10**(TOKEN_DECIMALS - 1)))),
    ]:
        page = await open_checkout(open_page, eth_gw.gw, created)
        uri = await page.locator("#wallet-link").get_attribute("href")
        match = EIP681.fullmatch(uri or "")
        assert match is not None, uri
        parameters = dict(part.split("=") for part in match["parameters"].split("&"))
        assert (match["target"], int(match["chain"]), match["function"]) == (target, CHAIN_ID, function)
        expected = {amount[0]: amount[1]} | ({"address": eth_gw.service_address} if function else {})
        assert parameters == expected
        assert await decode_qr(page, "#qr") == uri == created["payment_uri"]
        await expect(page.locator("#payer-wallet")).to_have_text(account.address)
        await expect(page.locator("#pay-chain")).to_contain_text("EIP-712")
    await screenshot(page, "checkout-ethereum-token")


async def test_the_card_page_sends_the_payer_to_stripe_and_turns_active(card: CardGateway,
                                                                       open_page: OpenPage) -> None:
    created = await card.created("10.00", "2.50")
    page = await open_checkout(open_page, card.gw, created)
    await expect(page.locator("#card-link")).to_have_attribute("href", created["checkout_url"])
    await expect(page.locator("#card-link")).to_have_text("Pay 10.00 USD by card")
    await screenshot(page, "checkout-card")
    await card.deliver("checkout.session.completed", card.stripe.pay_session(card.session_id(created)))
    await expect(page.locator("#phase")).to_have_attribute("data-phase", "active")
    await expect(page.locator("#pay-card")).to_be_hidden()


async def open_with_secret(page: Page, form: str, secret: str) -> None:
    await page.locator(f"{form} input").fill(secret)
    await page.locator(f"{form} button[type=submit]").click()


async def test_the_wallet_view_shows_remaining_hours_going_down_while_a_session_runs(gw: Gateway,
                                                                                    open_page: OpenPage) -> None:
    vendor = await gw.create_vendor("Streamy")
    permission = await gw.funded_permission("10", "2.5")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    page = await open_page()
    await page.goto(url(gw, f"/wallet{FAST}"))
    await open_with_secret(page, "#token-form", permission["permission_token"])
    await expect(page.locator("#remaining-hours")).to_have_text("4.000000")
    await expect(page.locator("#sessions")).to_contain_text("Streamy")
    await expect(page.locator("#run-out")).to_contain_text(re.compile(r"^in [34] h"))

    await gw.backdate_session(opened["session_id"], 360)
    started = await gw.db.fetchval("SELECT started_at FROM sessions WHERE id = $1", opened["session_id"])
    await gw.jobs.billing_tick(at=started + timedelta(seconds=360))
    await expect(page.locator("#remaining-hours")).to_have_text("3.900000")
    await expect(page.locator("#remaining-amount")).to_have_text("9.75000000 ZEC")
    await expect(page.locator("#sessions")).to_contain_text("0.25000000 ZEC")
    await expect(page.locator("#ledger")).to_contain_text("10.00000000 ZEC")
    await expect(page.locator("#top-up")).to_contain_text("Top up (any amount)")
    assert await decode_qr(page, "#top-up-qr") == zcash_uri(permission, None)
    assert permission["permission_token"] not in page.url
    await screenshot(page, "wallet")


async def sessions_for(gw: Gateway, vendor: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`count` ended sessions of the vendor, each on a permission of its own, charged for ten minutes."""
    ended = []
    for _ in range(count):
        permission = await gw.funded_permission("10", "2.5")
        status, opened = await gw.open_session(permission, vendor["vendor_id"])
        assert status == 201
        await gw.backdate_session(opened["session_id"], 600)
        status, body = await gw.end_session(opened["session_code"])
        assert status == 200, body
        ended.append({**body, "wallet": permission["user_wallet_address"]})
    return ended


async def test_the_vendor_dashboard_shows_a_chart_and_only_its_own_sessions(gw: Gateway,
                                                                           open_page: OpenPage) -> None:
    mine, theirs = await gw.create_vendor("Mine"), await gw.create_vendor("Theirs")
    own = await sessions_for(gw, mine, 2)
    other = await sessions_for(gw, theirs, 1)
    page = await open_page()
    await page.goto(url(gw, f"/vendor{FAST}"))
    await open_with_secret(page, "#key-form", mine["api_key"])
    await expect(page.locator("#dashboard[data-loaded]")).to_be_attached()
    await expect(page.locator("#vendor-name")).to_have_text("Mine")
    await expect(page.locator("#sessions tr")).to_have_count(2)
    for session in own:
        await expect(page.locator(f"#sessions code[title='{session['wallet']}']")).to_have_count(1)
    await expect(page.locator(f"#sessions code[title='{other[0]['wallet']}']")).to_have_count(0)
    await expect(page.locator("#charts .uplot canvas")).to_have_count(1)
    await expect(page.locator("#charts [data-points='30']")).to_have_count(1)
    async with page.expect_download() as download:
        await page.locator("#export").click()
    exported = (await (await download.value).path()).read_text()
    assert all(session["id"] in exported for session in own) and other[0]["id"] not in exported
    assert mine["api_key"] not in page.url
    await screenshot(page, "vendor-dashboard")


async def test_the_operator_dashboard_refuses_a_wrong_key_and_shows_the_system(gw: Gateway,
                                                                               open_page: OpenPage) -> None:
    vendor = await gw.create_vendor("Acme")
    [session] = await sessions_for(gw, vendor, 1)
    page = await open_page()
    await page.goto(url(gw, f"/operator{FAST}"))
    await open_with_secret(page, "#key-form", "not-the-operator-key-" + "x" * 20)
    await expect(page.locator("#key-error")).to_contain_text("The operator key was refused")
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('paygo.operator_key')") is None

    await open_with_secret(page, "#key-form", ADMIN_KEY)
    await expect(page.locator("#dashboard[data-loaded]")).to_be_attached()
    await expect(page.locator("#health")).to_contain_text("database")
    await expect(page.locator("#sessions-chart canvas")).to_have_count(1)
    await expect(page.locator("#revenue-charts .uplot")).to_have_count(1)
    permission_id = await gw.db.fetchval("SELECT permission_id FROM sessions WHERE id = $1", session["id"])
    await page.locator("#audit-id").fill(str(permission_id))
    await page.locator("#audit-form button").click()
    await expect(page.locator("#audit-changes")).to_contain_text("pending_payment → active")
    await expect(page.locator("#audit-ledger")).to_contain_text(re.compile(r"-0\.41\d{6}"))
    await screenshot(page, "operator-dashboard")


async def test_the_api_docs_render_from_the_gateway_alone(gw: Gateway, open_page: OpenPage) -> None:
    page = await open_page()
    await page.goto(url(gw, "/api/v1/docs"))
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert await page.locator(".swagger-ui .opblock").count() > 30
    await expect(page.locator(".swagger-ui")).to_contain_text("/api/v1/checkout/{permission_id}")
    await screenshot(page, "api-docs", full_page=False)


async def test_every_page_fits_a_phone_screen(gw: Gateway, open_page: OpenPage) -> None:
    vendor = await gw.create_vendor("A vendor with a rather long name for a small screen")
    await sessions_for(gw, vendor, 1)
    permission = await gw.create_permission("10", "2.5")
    page = await open_checkout(open_page, gw, permission, viewport=PHONE)
    assert await has_no_horizontal_scroll(page)
    await screenshot(page, "checkout-zcash-phone")
    for path, form, secret in [("/wallet", "#token-form", permission["permission_token"]),
                               ("/vendor", "#key-form", vendor["api_key"]),
                               ("/operator", "#key-form", ADMIN_KEY)]:
        await page.goto(url(gw, path + FAST))
        await open_with_secret(page, form, secret)
        await expect(page.locator("#wallet, #dashboard").first).to_be_visible()
        await expect(page.locator("[data-loaded]")).to_be_attached()
        assert await has_no_horizontal_scroll(page), path
        await screenshot(page, "phone" + path.replace("/", "-"))
    await page.goto(url(gw, "/api/v1/docs"))
    await expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert await has_no_horizontal_scroll(page)
