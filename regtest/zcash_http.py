"""The stand-in over HTTP: each server's envelope, HTTP statuses, Content-Type and authentication failure, and the
two ways `regtest_failnextsend` keeps a reply from arriving."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BasicAuth, web

from chains.jsonrpc import decode_json, encode_json
from regtest.zcash_rpc import RegtestZcash
from regtest.zcash_types import DEFAULT_FAUCET_ZAT, ZALLET, ZCASHD, ZEBRAD, RpcMethodError, SendInterrupted

AUTH_FAILURE_DELAY_SECONDS = 0.25  # zcashd and Zallet sleep this long before answering 401
MAX_REQUEST_BYTES = 1024**2  # larger bodies get 413 (aiohttp's default, kept explicit)
HELD_REQUEST_POLL_SECONDS = 0.05  # how often a held request checks whether its client gave up

NODE_KEY = web.AppKey("zcash_regtest_node", RegtestZcash)
STOPPING_KEY = web.AppKey("zcash_regtest_stopping", asyncio.Event)
_JSONRPSEE_CONTENT_TYPE = "application/json; charset=utf-8"


def _http_status(server: str, code: int) -> int:
    if server == ZEBRAD:
        return 400 if code in (-32700, -32600) else 200
    return {-32600: 400, -32601: 404}.get(code, 500)


def _reply(server: str, request: Any, result: Any = None, error: RpcMethodError | None = None) -> dict[str, Any]:
    request_id = request.get("id") if isinstance(request, dict) else None
    if server != ZCASHD and isinstance(request, dict) and request.get("jsonrpc") == "2.0":
        if error is not None:
            return {"jsonrpc": "2.0", "error": error.as_json(), "id": request_id}
        return {"jsonrpc": "2.0", "result": result, "id": request_id}
    # bitcoind style, which jsonrpsee's compatibility layer also uses for 1.0 requests
    return {"result": result, "error": None if error is None else error.as_json(), "id": request_id}


def _handle_one(node: RegtestZcash, server: str, request: Any) -> tuple[dict[str, Any], RpcMethodError | None]:
    """One call's reply; SendInterrupted passes through (the whole request then gets no reply)."""
    try:
        if not isinstance(request, dict):
            raise RpcMethodError(-32600, "Invalid Request object")
        if not isinstance(request.get("method"), str):
            raise RpcMethodError(-32600, "Method must be a string")
        result = node.execute(server, request["method"], request.get("params"))
    except RpcMethodError as error:
        return _reply(server, request, error=error), error
    return _reply(server, request, result=result), None


def _authorized(request: web.Request, rpcuser: str, rpcpassword: str) -> bool:
    header = request.headers.get("Authorization", "")
    try:
        credentials = BasicAuth.decode(header)
    except ValueError:
        return False
    return secrets.compare_digest(credentials.login.encode(), rpcuser.encode()) and secrets.compare_digest(
        credentials.password.encode(), rpcpassword.encode()
    )


def _json_response(server: str, body: Any, status: int) -> web.Response:
    if server == ZCASHD:
        return web.Response(
            status=status, body=(encode_json(body) + "\n").encode(), headers={"Content-Type": "application/json"}
        )
    return web.Response(
        status=status, body=encode_json(body).encode(), headers={"Content-Type": _JSONRPSEE_CONTENT_TYPE}
    )


def _drop_connection(request: web.Request) -> web.HTTPException:
    """Close the connection without a reply; the caller raises what this returns to end the handler."""
    if request.transport is not None:
        request.transport.close()
    return web.HTTPServiceUnavailable()


async def _hold_until_client_leaves(request: web.Request) -> web.HTTPException:
    """Never reply: wait until the client closes the connection or the node stops, then drop it."""
    stopping = request.app[STOPPING_KEY]
    while request.transport is not None and not request.transport.is_closing() and not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), HELD_REQUEST_POLL_SECONDS)
    return _drop_connection(request)


def _endpoint(
    server: str, rpcuser: str, rpcpassword: str, accept_batches: bool
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not _authorized(request, rpcuser, rpcpassword):
            if server == ZEBRAD:
                raise _drop_connection(request)  # zebrad closes the connection without any reply (zebra#9190)
            await asyncio.sleep(AUTH_FAILURE_DELAY_SECONDS)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        node = request.app[NODE_KEY]
        try:
            payload = decode_json(await request.read())
        except (ValueError, UnicodeDecodeError):
            error = RpcMethodError(-32700, "Parse error")
            return _json_response(server, _reply(server, None, error=error), _http_status(server, error.code))
        try:
            return _answer(node, server, payload, accept_batches)
        except SendInterrupted as interrupted:
            if interrupted.mode == "timeout":
                raise await _hold_until_client_leaves(request) from None
            raise _drop_connection(request) from None

    return handle


def _answer(node: RegtestZcash, server: str, payload: Any, accept_batches: bool) -> web.Response:
    if isinstance(payload, list):
        if not accept_batches or not payload:
            error = (
                RpcMethodError(-32005, "Batched requests are not supported by this server")
                if not accept_batches
                else RpcMethodError(-32600, "Invalid Request object")
            )
            return _json_response(server, _reply(server, None, error=error), _http_status(server, error.code))
        replies = [_handle_one(node, server, item)[0] for item in payload]
        return _json_response(server, replies, 200)
    reply, failure = _handle_one(node, server, payload)
    return _json_response(server, reply, 200 if failure is None else _http_status(server, failure.code))


def create_app(
    *,
    rpcuser: str,
    rpcpassword: str,
    personality: str = ZCASHD,
    faucet_zat: int = DEFAULT_FAUCET_ZAT,
    address_index: bool = True,
    accept_batches: bool = True,
) -> web.Application:
    """The stand-in as an aiohttp application: zcashd at `/`, or Zallet at `/` and zebrad at `/node`.

    `address_index=False` is zcashd without `-insightexplorer` (getaddressbalance disabled); `accept_batches=False`
    makes every server refuse JSON-RPC batches, as a jsonrpsee server configured without them does.
    """
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[NODE_KEY] = RegtestZcash(personality=personality, faucet_zat=faucet_zat, address_index=address_index)
    app[STOPPING_KEY] = asyncio.Event()

    async def release_held_requests(app: web.Application) -> None:
        app[STOPPING_KEY].set()

    app.on_shutdown.append(release_held_requests)
    wallet_server = ZCASHD if personality == ZCASHD else ZALLET
    app.router.add_post("/", _endpoint(wallet_server, rpcuser, rpcpassword, accept_batches))
    if personality == ZALLET:
        app.router.add_post("/node", _endpoint(ZEBRAD, rpcuser, rpcpassword, accept_batches))
    return app


@dataclass
class RunningNode:
    """A started stand-in: `url` is the wallet's RPC URL, `node_url` the chain node's (the same for zcashd), and
    the credentials it was started with."""

    url: str
    node_url: str
    app: web.Application
    runner: web.AppRunner
    rpcuser: str
    rpcpassword: str

    @property
    def node(self) -> RegtestZcash:
        return self.app[NODE_KEY]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_zcash_regtest(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    rpcuser: str,
    rpcpassword: str,
    personality: str = ZCASHD,
    faucet_zat: int = DEFAULT_FAUCET_ZAT,
    address_index: bool = True,
    accept_batches: bool = True,
) -> RunningNode:
    """Serve the stand-in on `host:port` (port 0: a free port)."""
    app = create_app(
        rpcuser=rpcuser, rpcpassword=rpcpassword, personality=personality, faucet_zat=faucet_zat,
        address_index=address_index, accept_batches=accept_batches,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    base = f"http://{bound_host}:{bound_port}"
    node_url = f"{base}/node" if personality == ZALLET else f"{base}/"
    return RunningNode(f"{base}/", node_url, app, runner, rpcuser, rpcpassword)
