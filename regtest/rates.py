"""A local stand-in for a public spot-price API, shaped like Coinbase's (`GET /v2/prices/{BASE}-{QUOTE}/spot` →
`{"data": {"amount": "30.00", "base": "ZEC", "currency": "USD"}}`, with an HTTP `Date` header), for the tests and
the embedded default (`paygo serve` without RATE_PROVIDER_URL). Test money only: its rates are whatever it is told.

Tests drive it with the methods of `RateStandIn`: `set_rate` (a rate change), `fail_with` (the provider down: every
request answers that HTTP status) and `age` (its answers carry a `Date` that many seconds old, as a stale cache
would). An unknown pair answers 404 with Coinbase's error shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

from aiohttp import web

DEFAULT_RATES = {"ZEC-USD": Decimal("30.00"), "ETH-USD": Decimal("3000.00")}


@dataclass
class RateStandIn:
    rates: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_RATES))
    failure_status: int | None = None
    age_seconds: int = 0
    requests: int = 0

    def set_rate(self, pair: str, amount: str | Decimal) -> None:
        self.rates[pair] = Decimal(amount)

    def fail_with(self, status: int | None) -> None:
        self.failure_status = status

    def age(self, seconds: int) -> None:
        self.age_seconds = seconds

    async def spot(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.failure_status is not None:
            return web.json_response({"message": "service unavailable"}, status=self.failure_status)
        pair = request.match_info["pair"]
        rate = self.rates.get(pair)
        date = format_datetime(datetime.now(UTC) - timedelta(seconds=self.age_seconds), usegmt=True)
        if rate is None:
            return web.json_response({"errors": [{"id": "not_found", "message": "Invalid currency"}]}, status=404,
                                     headers={"Date": date})
        base, _, currency = pair.partition("-")
        body = {"data": {"amount": str(rate), "base": base, "currency": currency}}
        return web.json_response(body, headers={"Date": date})


@dataclass
class RunningRates:
    url: str
    stand_in: RateStandIn
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_rate_standin(host: str = "127.0.0.1", port: int = 0,
                             rates: dict[str, Decimal] | None = None) -> RunningRates:
    """Serve the stand-in on `host:port` (port 0: a free port)."""
    stand_in = RateStandIn(dict(rates if rates is not None else DEFAULT_RATES))
    app = web.Application()
    app.router.add_get("/v2/prices/{pair}/spot", stand_in.spot)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningRates(f"http://{bound_host}:{bound_port}", stand_in, runner)
