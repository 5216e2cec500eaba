"""SSRF (issue 10, finding 3): URLs naming the gateway's own networks are refused when registered (422
`url_not_allowed`), and a delivery never reaches them either, whatever the stored URL or its DNS says: a real listener
on 127.0.0.1 counts what reaches it. Card redirect URLs are limited to the configured hosts."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from billing.outbound import GuardedResolver, TargetRefused, WebhookSender, address_allowed, check_target_url
from kernel.errors import InvalidRequest
from regtest.stripe_api import RunningStripe
from regtest.zcash_node import RunningNode
from tests.conftest import ADMIN_KEY, Gateway, new_wallet
from tests.stripe_fixtures import CardGateway, card_env
from tests.webhook_fixtures import WEBHOOK_SIGNING_KEY

PRIVATE_TARGETS = [
    "http://127.0.0.1/hook", "http://localhost/hook", "http://LOCALHOST./hook", "http://[::1]/hook",
    "http://0x7f000001/hook", "http://2130706433/hook", "http://127.1/hook", "http://0177.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/", "http://10.0.0.5/hook",
    "http://192.168.1.1/hook", "http://[::ffff:127.0.0.1]/hook", "http://[fe80::1]/hook", "http://0.0.0.0/hook",
    "http://224.0.0.1/hook", "http://[64:ff9b::7f00:1]/hook", "http://redis/hook", "http://db.internal/hook",
    "http://printer.local/hook", "http://100.64.0.1/hook",
]


@pytest.fixture
async def strict_gw(make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> Gateway:
    """Signs webhooks and, as in production, refuses private targets."""
    node, password = zcash_regtest
    return await make_gateway(node, password, WEBHOOK_SIGNING_KEY=WEBHOOK_SIGNING_KEY)


@pytest.fixture
async def listener(aiohttp_server: Callable[..., Any]) -> tuple[int, list[web.Request]]:
    """A real receiver on 127.0.0.1 that records every request that reaches it."""
    reached: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        reached.append(request)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    return server.port or 0, reached


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
async def test_private_notify_urls_are_refused_at_creation(strict_gw: Gateway, url: str) -> None:
    status, body = await strict_gw.call("POST", "/api/v1/zcash/permissions", json={
        "user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1", "notify_url": url})
    assert (status, body["error"]["code"]) == (422, "url_not_allowed"), body
    assert await strict_gw.db.fetchval("SELECT count(*) FROM permissions") == 0


@pytest.mark.parametrize("url", PRIVATE_TARGETS[:8])
async def test_private_vendor_webhook_urls_are_refused(strict_gw: Gateway, url: str) -> None:
    vendor = await strict_gw.create_vendor()
    status, body = await strict_gw.call("PUT", f"/api/v1/admin/vendors/{vendor['vendor_id']}/webhook",
                                        api_key=ADMIN_KEY, json={"url": url})
    assert (status, body["error"]["code"]) == (422, "url_not_allowed"), body


async def test_public_targets_are_accepted(strict_gw: Gateway) -> None:
    for url in ("https://example.com/hook", "http://93.184.215.14:8080/x", "https://[2606:4700::1111]/h"):
        created = await strict_gw.create_permission("1", "1", notify_url=url)
        assert created["notify_url"] == url


async def test_a_stored_private_target_is_never_reached(strict_gw: Gateway,
                                                        listener: tuple[int, list[web.Request]]) -> None:
    """URLs that got into the outbox anyway (stored before the rule, or a name whose DNS changed after it was
    registered) are refused at delivery: the listener is never reached, and an open port reads like a closed one."""
    port, reached = listener
    targets = [f"http://127.0.0.1:{port}/hook", f"http://localhost:{port}/hook", f"http://2130706433:{port}/hook",
               f"http://127.1:{port}/hook", f"http://[::1]:{port}/hook", f"http://0x7f000001:{port}/hook",
               "http://127.0.0.1:9/closed"]
    for index, url in enumerate(targets):
        await strict_gw.db.execute(
            "INSERT INTO outbox (kind, event_type, dedupe_key, target_url, payload, vendor_id) "
            "VALUES ('vendor_webhook', 'session.started', $1, $2, '{}', $3)",
            f"ssrf-{index}", url, (await strict_gw.create_vendor())["vendor_id"])
    summary = await strict_gw.jobs.deliver(now=datetime.now(UTC))
    assert summary.claimed == len(targets) and summary.delivered == 0
    assert reached == []
    errors = [row["error"] for row in await strict_gw.db.fetch("SELECT error FROM webhook_deliveries ORDER BY id")]
    assert len(errors) == len(targets) and all(error.startswith("refused: ") for error in errors), errors
    assert errors[0] == errors[-1]  # the open port and the closed one answer the same


async def test_the_resolver_refuses_a_name_that_resolves_to_loopback() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(TargetRefused):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_redirects_are_not_followed(aiohttp_server: Callable[..., Any],
                                          listener: tuple[int, list[web.Request]]) -> None:
    port, reached = listener

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{port}/stolen")

    app = web.Application()
    app.router.add_post("/hook", redirect)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    sender = WebhookSender(allow_private=True)  # the first hop is local in this test; the redirect is not followed
    try:
        sent = await sender.post(str(server.make_url("/hook")), b"{}", {}, timeout_seconds=2)
    finally:
        await sender.close()
    assert sent.status_code == 307 and sent.error is not None and reached == []


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254",
                                     "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::",
                                     "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1", "2002:7f00:1::",
                                     "64:ff9b::a00:1"])
def test_non_public_addresses(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address))


def test_private_targets_are_allowed_only_by_the_development_setting() -> None:
    assert check_target_url("http://127.0.0.1:8080/h", field="notify_url", allow_private=True)
    with pytest.raises(InvalidRequest) as refused:
        check_target_url("http://127.0.0.1:8080/h", field="notify_url", allow_private=False)
    assert refused.value.code == "url_not_allowed"


async def test_card_redirects_only_to_configured_hosts(make_gateway: Callable[..., Any],
                                                       zcash_regtest: tuple[RunningNode, str],
                                                       stripe_api: RunningStripe) -> None:
    node, password = zcash_regtest
    gw = await make_gateway(node, password, **card_env(stripe_api.url), CARD_REDIRECT_HOSTS="thanks.example")
    card = CardGateway(gw, stripe_api.stand_in)
    for field in ("success_url", "cancel_url"):
        status, body = await card.create(**{field: "https://phish.example/thanks"})
        assert (status, body["error"]["code"]) == (422, "url_not_allowed"), body
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 0
    # CARD_REDIRECT_HOSTS, and the host of STRIPE_SUCCESS_URL (shop.example)
    status, body = await card.create(success_url="https://thanks.example/ok", cancel_url="https://shop.example/c")
    assert status == 201, body
