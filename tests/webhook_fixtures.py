"""A local webhook receiver (a real aiohttp server on 127.0.0.1) that fails a chosen number of times, and a gateway
that signs webhooks (registered through `pytest_plugins`)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from regtest.zcash_node import RunningNode

if TYPE_CHECKING:
    from tests.conftest import Gateway

WEBHOOK_SIGNING_KEY = "whk-" + secrets.token_urlsafe(32)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Answers `fail_status` to the first `failures` requests, then 200; keeps every request it got."""

    url: str = ""
    failures: int = 0
    fail_status: int = 500
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        if len(self.received) <= self.failures:
            return web.Response(status=self.fail_status, text="not now")
        return web.Response(status=200, text="ok")


@pytest.fixture
async def webhook_receiver(aiohttp_server: Callable[..., Any]) -> WebhookReceiver:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server: TestServer = await aiohttp_server(app, host="127.0.0.1")
    receiver.url = str(server.make_url("/hook"))
    return receiver


@pytest.fixture
async def signing_gw(make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> Gateway:
    """A gateway on the Zcash stand-in with WEBHOOK_SIGNING_KEY set (so notify_url is accepted), allowed to deliver
    to the tests' receivers on 127.0.0.1."""
    node, password = zcash_regtest
    return await make_gateway(node, password, WEBHOOK_SIGNING_KEY=WEBHOOK_SIGNING_KEY,
                              ALLOW_PRIVATE_WEBHOOK_TARGETS="true")
