"""A recording HTTP proxy in front of a JSON-RPC node (the Zcash stand-in): it forwards every request as it is and
records what went through (methods, body sizes, results), and can make the node look down (HTTP 503) on demand.
Tests use it to see how many requests a watcher pass makes, how large they are, and what a failed pass does to
the next one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from chains.jsonrpc import decode_json


@dataclass(frozen=True)
class Exchange:
    """One HTTP request through the proxy: the JSON-RPC calls it carried and what came back."""

    calls: list[tuple[str, list[Any]]]  # (method, params)
    request_bytes: int
    response_bytes: int
    results: list[Any]  # each call's `result` (None when failing or an error)

    def result_of(self, method: str) -> Any:
        [result] = [result for (name, _), result in zip(self.calls, self.results, strict=True) if name == method]
        return result


@dataclass
class RecordingProxy:
    target: str  # the node's server, e.g. http://127.0.0.1:PORT/ (each request's path is kept)
    failing: bool = False  # answer 503 without forwarding, as a node that is down
    exchanges: list[Exchange] = field(default_factory=list)
    _server: TestServer | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/"))

    def take(self) -> list[Exchange]:
        """The exchanges since the last take."""
        taken, self.exchanges = self.exchanges, []
        return taken

    async def start(self) -> RecordingProxy:
        app = web.Application(client_max_size=16 * 1024**2)
        app.router.add_post("/{path:.*}", self._forward)
        self._session = aiohttp.ClientSession()
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        sent = decode_json(body)
        calls = [(call["method"], call.get("params", [])) for call in (sent if isinstance(sent, list) else [sent])]
        if self.failing:
            self.exchanges.append(Exchange(calls, len(body), 0, [None] * len(calls)))
            return web.Response(status=503, text="node down (test)")
        assert self._session is not None
        headers = {name: value for name, value in request.headers.items()
                   if name in ("Authorization", "Content-Type")}
        async with self._session.post(self.target.rstrip("/") + request.path, data=body, headers=headers) as reply:
            answer = await reply.read()
            status, content_type = reply.status, reply.headers.get("Content-Type", "application/json")
        replies = decode_json(answer)
        by_id = {item.get("id"): item for item in (replies if isinstance(replies, list) else [replies])}
        ids = [call.get("id") for call in (sent if isinstance(sent, list) else [sent])]
        self.exchanges.append(Exchange(calls, len(body), len(answer),
                                       [by_id.get(call_id, {}).get("result") for call_id in ids]))
        return web.Response(status=status, body=answer, headers={"Content-Type": content_type})
