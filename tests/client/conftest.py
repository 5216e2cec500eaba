"""Fixtures for the Python client's tests (clients/python, installed into the project's virtualenv by `make`).

`client_for` builds a client of a running test gateway — `AsyncPayGo`, or the blocking `PayGo` driven from the
test's event loop through threads (the gateway is served by that same loop, so a blocking call must not run on it).
The fixture is parametrized over both, so every test of a flow runs once per client.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from paygo_client import AsyncPayGo, CreatedPermission, PayGo, RetryPolicy

from tests.conftest import MIN_CONFIRMATIONS, Gateway, new_wallet

FAST_RETRIES = RetryPolicy(max_retries=4, backoff=0.05, max_backoff=0.2)
_DONE = object()


def base_url(client: TestClient) -> str:
    """The gateway's address: aiohttp's TestClient serves the app on a real TCP port."""
    return str(client.make_url("")).rstrip("/")


async def _in_threads(iterator: Generator[Any, None, None]) -> AsyncIterator[Any]:
    try:
        while (item := await asyncio.to_thread(next, iterator, _DONE)) is not _DONE:
            yield item
    finally:
        await asyncio.to_thread(iterator.close)


class Threaded:
    """`PayGo` with every method awaitable: each call runs in a worker thread; generator methods (`live`, the
    `iter_*` helpers) become async iterators that take each item in a thread."""

    def __init__(self, client: PayGo) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute
        if inspect.isgeneratorfunction(attribute):
            return lambda *args, **kwargs: _in_threads(attribute(*args, **kwargs))

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attribute, *args, **kwargs)

        return call


async def funded(gw: Gateway, paygo: Any, amount: str = "10", rate: str = "2.5") -> CreatedPermission:
    """A new Zcash permission, paid and active, made through `paygo` (a client from `client_for`)."""
    created: CreatedPermission = await paygo.create_zcash_permission(new_wallet(), amount, rate)
    await gw.pay(created.payment_address, amount)
    await gw.mine(MIN_CONFIRMATIONS)
    await paygo.wait_until_active(created, timeout=10, interval=0.05)
    return created


@pytest.fixture(params=["async", "sync"])
async def client_for(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """`client_for(url_or_test_client, **options)`: a client of that kind, closed after the test."""
    opened: list[Any] = []

    def build(target: TestClient | str, **options: Any) -> Any:
        url = target if isinstance(target, str) else base_url(target)
        options.setdefault("retry", FAST_RETRIES)
        if request.param == "async":
            client: Any = AsyncPayGo(url, **options)
        else:
            client = Threaded(PayGo(url, **options))
        opened.append(client)
        return client

    yield build
    for client in opened:
        if isinstance(client, AsyncPayGo):
            await client.close()
        else:
            await asyncio.to_thread(client.client.close)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rate_limit_stand_in: retries of 429/503 against a local stand-in until the "
                                       "gateway has rate limits (then point these tests at the real gateway)")
