"""The async JSON-RPC client against the Zcash stand-in (both personalities) and against small raw servers for
what the stand-in cannot show (a server that never answers, the in-flight cap)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from chains.jsonrpc import JsonRpcClient, RpcAuthError, RpcError, RpcUnavailable, decode_json, encode_json
from regtest.zcash_node import RunningNode, start_zcash_regtest
from tests.rpc_proxy import RecordingProxy
from tests.zcash_fixtures import ZCASH_RPC_USER, RegtestControl


def client_for(url: str, password: str, **options: object) -> JsonRpcClient:
    return JsonRpcClient(url, user=ZCASH_RPC_USER, password=password, retry_backoff=0.01, **options)


def test_encode_json_writes_decimals_exactly_and_refuses_floats() -> None:
    assert encode_json({"a": [Decimal("0.00000001"), Decimal("1E+2"), 3, None, True, "x"]}) == (
        '{"a":[0.00000001,100,3,null,true,"x"]}'
    )
    assert decode_json("[1.10000000, 2]") == [Decimal("1.10000000"), 2]
    with pytest.raises(TypeError):
        encode_json({"amount": 0.1})
    with pytest.raises(ValueError):
        encode_json(Decimal("NaN"))


async def test_decimals_round_trip_exactly(zcash_control: RegtestControl) -> None:
    account = await zcash_control.new_account()
    address = (await zcash_control.wallet.call("z_getaddressforaccount", account, ["sapling"]))["address"]
    await zcash_control.pay(address, Decimal("0.12345678"))

    [row] = await zcash_control.wallet.call("z_listunspent", 0)
    amount_key = "amount" if zcash_control.personality == "zcashd" else "value"
    assert row[amount_key] == Decimal("0.12345678") and isinstance(row[amount_key], Decimal)
    assert row[f"{amount_key}Zat"] == 12_345_678


async def test_method_error_is_rpc_error_whatever_the_http_status(zcash_control: RegtestControl) -> None:
    with pytest.raises(RpcError) as unknown:  # HTTP 404 on zcashd and Zallet
        await zcash_control.wallet.call("no_such_method")
    assert unknown.value.code == -32601
    with pytest.raises(RpcError) as invalid:  # HTTP 500 on zcashd, 200 on zebrad
        await zcash_control.chain.call("getblockhash", 99)
    assert invalid.value.code == -8


async def test_wrong_password_is_an_auth_error_on_every_endpoint(zcash_node: RunningNode) -> None:
    """401 from zcashd and Zallet; zebrad (the Zallet personality's /node) drops the connection instead."""
    for url in {zcash_node.url, zcash_node.node_url}:
        client = client_for(url, "wrong-password")
        with pytest.raises(RpcAuthError):
            await client.call("getbestblockhash")
        await client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_connection_refused_is_unavailable_after_retries() -> None:
    client = JsonRpcClient(f"http://127.0.0.1:{free_port()}/", retry_attempts=2, retry_backoff=0.01)
    with pytest.raises(RpcUnavailable, match="still failing after 2 attempts"):
        await client.call("getblockcount")
    await client.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server that reads requests and never answers; yields its URL and the count of connections."""
    connections: list[int] = []
    release = asyncio.Event()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/", connections
    release.set()
    server.close()
    await server.wait_closed()


async def test_timeout_is_unavailable_and_not_retried(silent_server: tuple[str, list[int]]) -> None:
    url, connections = silent_server
    client = JsonRpcClient(url, timeout=0.2, retry_backoff=0.01)
    with pytest.raises(RpcUnavailable, match=r"did not answer within 0\.2 s"):
        await client.call("getblockcount")
    assert len(connections) == 1
    await client.close()


async def test_batch_answers_in_order_with_errors_in_place(zcash_control: RegtestControl) -> None:
    count, best, missing = await zcash_control.chain.batch(
        [("getblockcount", []), ("getbestblockhash", []), ("no_such_method", [])]
    )
    assert count == 0
    assert best == await zcash_control.chain.call("getblockhash", 0)
    assert isinstance(missing, RpcError) and missing.code == -32601
    assert await zcash_control.chain.batch([]) == []


async def test_a_large_batch_is_split_into_bounded_requests(zcash_node: RunningNode) -> None:
    node_url = URL(zcash_node.node_url)
    proxy = await RecordingProxy(str(node_url.with_path("/"))).start()
    client = client_for(str(URL(proxy.url).with_path(node_url.path)), zcash_node.rpcpassword, max_batch_calls=2)
    try:
        assert await client.batch([("getblockhash", [0])] * 4 + [("getblockcount", [])]) == [
            await client.call("getblockhash", 0)] * 4 + [0]
        assert [len(exchange.calls) for exchange in proxy.take()] == [2, 2, 1, 1]  # the batch, then the call
    finally:
        await client.close()
        await proxy.close()


async def test_batch_falls_back_to_single_calls_when_refused() -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", accept_batches=False)
    client = client_for(node.node_url, "pw")
    genesis = await client.call("getblockhash", 0)
    assert await client.batch([("getblockcount", []), ("getbestblockhash", [])]) == [0, genesis]
    [error] = await client.batch([("getblockhash", [5])])
    assert isinstance(error, RpcError) and error.code == -8
    await client.close()
    await node.stop()


async def test_warming_up_codes_are_retried_for_reads(zcash_control: RegtestControl) -> None:
    await zcash_control.set_wallet_syncing(-28, calls=2)
    assert await zcash_control.wallet.call("z_listaccounts") == []

    await zcash_control.set_wallet_syncing(-28)
    with pytest.raises(RpcUnavailable, match="still failing"):
        await zcash_control.wallet.call("z_listaccounts")
    await zcash_control.set_wallet_syncing(None)


async def test_send_is_never_retried(zcash_control: RegtestControl) -> None:
    account = await zcash_control.new_account()
    address = (await zcash_control.wallet.call("z_getaddressforaccount", account, ["sapling"]))["address"]
    await zcash_control.set_wallet_syncing(-28, calls=1)
    with pytest.raises(RpcError) as refused:
        await zcash_control.wallet.send("z_sendmany", "ANY_TADDR", [{"address": address, "amount": Decimal(1)}])
    assert refused.value.code == -28
    assert await zcash_control.wallet.call("z_getoperationstatus") == []  # no second attempt went through


async def test_calls_in_flight_are_capped() -> None:
    in_flight = 0
    most_in_flight = 0
    cap_reached = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, most_in_flight
        body = await request.json()
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if in_flight == 2:
            cap_reached.set()
        await cap_reached.wait()
        in_flight -= 1
        return web.json_response({"result": body["id"], "error": None, "id": body["id"]})

    app = web.Application()
    app.router.add_post("/", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    client = JsonRpcClient(f"http://127.0.0.1:{runner.addresses[0][1]}/", max_in_flight=2)
    results = await asyncio.gather(*(client.call("ping") for _ in range(6)))
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert most_in_flight == 2
    await client.close()
    await runner.cleanup()


async def test_close_leaves_a_borrowed_session_open(zcash_control: RegtestControl) -> None:
    async with aiohttp.ClientSession() as session:
        client = JsonRpcClient(zcash_control.node.node_url, user=ZCASH_RPC_USER,
                               password=zcash_control.node.rpcpassword, session=session)
        assert await client.call("getblockcount") == 0
        await client.close()
        assert not session.closed
