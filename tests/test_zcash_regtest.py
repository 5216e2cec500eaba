"""The Zcash regtest stand-in: HTTP statuses, Content-Types and error codes per personality, and the chain,
wallet and faucet behaviour the funding source relies on (mempool, mining, reorgs, per-address listings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from chains.jsonrpc import RpcError, decode_json, encode_json
from chains.zcash_address import ZcashNetwork, decode_address, encode_sapling, encode_unified
from regtest.zcash_node import NO_MEMO, RunningNode, start_zcash_regtest
from tests.zcash_fixtures import ZCASH_RPC_USER, RegtestControl


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: Any, password: str | None) -> tuple[int, str, Any]:
    """POST raw JSON; returns (HTTP status, exact Content-Type header, decoded body or raw bytes)."""
    headers = {"Content-Type": "application/json"}
    if password is not None:
        headers["Authorization"] = aiohttp.encode_basic_auth(ZCASH_RPC_USER, password)
    data = body if isinstance(body, bytes) else encode_json(body).encode()
    async with http.post(url, data=data, headers=headers) as response:
        raw = await response.read()
        content_type = response.headers.get("Content-Type", "")
        return response.status, content_type, decode_json(raw) if raw else raw


def rpc(method: str, *params: Any) -> dict[str, Any]:
    return {"jsonrpc": "1.0", "id": 7, "method": method, "params": list(params)}


async def sapling_address(control: RegtestControl) -> str:
    account = await control.new_account()
    return (await control.wallet.call("z_getaddressforaccount", account, ["sapling"]))["address"]


# --- HTTP shapes ------------------------------------------------------------------------------------------------


async def test_zcashd_http_statuses_and_content_type(http: aiohttp.ClientSession) -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", personality="zcashd")
    url = node.url
    assert node.node_url == url

    status, content_type, body = await post(http, url, rpc("getblockcount"), "pw")
    assert (status, content_type, body) == (200, "application/json", {"result": 0, "error": None, "id": 7})

    status, _, body = await post(http, url, rpc("nope"), "pw")
    assert (status, body["error"]["code"], body["result"]) == (404, -32601, None)

    status, _, body = await post(http, url, rpc("getblockhash", 5), "pw")
    assert (status, body["error"]) == (500, {"code": -8, "message": "Block height out of range"})

    status, _, body = await post(http, url, {"id": 1, "method": "getblockcount", "params": {}}, "pw")
    assert (status, body["error"]["code"], body["error"]["message"]) == (400, -32600, "Params must be an array")

    status, _, body = await post(http, url, rpc("getblockhash"), "pw")
    assert (status, body["error"]["code"]) == (500, -32602)

    status, _, body = await post(http, url, b"{not json", "pw")
    assert (status, body["error"]["code"]) == (500, -32700)

    status, _, body = await post(http, url, [rpc("getblockcount"), rpc("nope")], "pw")
    assert status == 200 and [reply["result"] for reply in body] == [0, None]

    async with http.post(url, data=encode_json(rpc("getblockcount")),
                         headers={"Authorization": aiohttp.encode_basic_auth(ZCASH_RPC_USER, "bad")}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="jsonrpc"'
        assert await response.read() == b""
    await node.stop()


async def test_requests_over_one_mebibyte_are_refused(http: aiohttp.ClientSession) -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw")
    body = encode_json(rpc("getblockcount", "x" * 1024**2)).encode()
    headers = {"Authorization": aiohttp.encode_basic_auth(ZCASH_RPC_USER, "pw")}
    async with http.post(node.url, data=body, headers=headers) as response:
        assert response.status == 413
    await node.stop()


async def test_zallet_and_zebrad_http_statuses_and_content_type(http: aiohttp.ClientSession) -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", personality="zallet")
    wallet, chain = node.url, node.node_url
    assert chain.endswith("/node")

    # Zallet: wallet methods only, statuses mapped like zcashd, jsonrpsee's Content-Type.
    status, content_type, body = await post(http, wallet, rpc("getblockchaininfo"), "pw")
    assert (status, content_type, body["error"]["code"]) == (404, "application/json; charset=utf-8", -32601)
    status, _, body = await post(http, wallet, rpc("z_listreceivedbyaddress", "x"), "pw")
    assert (status, body["error"]["code"]) == (404, -32601)
    status, _, body = await post(http, wallet, rpc("z_getaddressforaccount", "not-a-uuid"), "pw")
    assert (status, body["error"]["code"]) == (500, -8)
    status, _, body = await post(http, wallet, rpc("getwalletstatus"), "pw")
    assert status == 200 and body["result"]["node_tip"]["height"] == 0

    # zebrad: chain methods, method errors with HTTP 200, named params, JSON-RPC 2.0 replies when asked.
    status, content_type, body = await post(http, chain, rpc("getblockhash", 5), "pw")
    assert (status, content_type, body["error"]["code"]) == (200, "application/json; charset=utf-8", -8)
    status, _, body = await post(http, chain, rpc("z_getnewaccount", "x"), "pw")
    assert (status, body["error"]["code"]) == (200, -32601)
    status, _, body = await post(
        http, chain, {"jsonrpc": "2.0", "id": 3, "method": "getblockhash", "params": {"height": 0}}, "pw"
    )
    assert status == 200 and set(body) == {"jsonrpc", "result", "id"}

    # Bad credentials: Zallet answers 401, zebrad drops the connection.
    status, _, body = await post(http, wallet, rpc("getwalletstatus"), "bad")
    assert (status, body) == (401, b"")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, chain, rpc("getblockcount"), "bad")
    await node.stop()


# --- chain, mempool and reorgs ------------------------------------------------------------------------------------


async def test_blockchain_info_and_blocks(zcash_control: RegtestControl) -> None:
    hashes = await zcash_control.mine(3)
    info = await zcash_control.chain.call("getblockchaininfo")
    assert (info["chain"], info["blocks"], info["bestblockhash"]) == ("regtest", 3, hashes[-1])
    assert info["verificationprogress"] == 1
    assert ("initial_block_download_complete" in info) == (zcash_control.personality == "zcashd")
    assert await zcash_control.chain.call("getbestblockhash") == hashes[-1]
    assert await zcash_control.chain.call("getblockhash", 1) == hashes[0]
    block = await zcash_control.chain.call("getblock", hashes[1])
    assert (block["height"], block["confirmations"], block["previousblockhash"]) == (2, 2, hashes[0])
    header = await zcash_control.chain.call("getblockheader", hashes[2], True)
    assert header["time"] >= block["time"] and "nextblockhash" not in header


async def test_faucet_payment_is_seen_in_the_mempool_then_confirmed(zcash_control: RegtestControl) -> None:
    address = await sapling_address(zcash_control)
    txid = await zcash_control.pay(address, "1.25", memo="order 42")
    assert await zcash_control.chain.call("getrawmempool") == [txid]
    [row] = await zcash_control.wallet.call("z_listunspent", 0)
    assert (row["txid"], row["outindex"], row["confirmations"], row["pool"]) == (txid, 0, 0, "sapling")
    assert row["memoStr"] == "order 42" and len(row["memo"]) == 1024
    assert await zcash_control.wallet.call("z_listunspent") == []  # minconf 1 by default

    [block_hash] = await zcash_control.mine(1)
    [row] = await zcash_control.wallet.call("z_listunspent", 1)
    assert row["confirmations"] == 1
    assert (await zcash_control.chain.call("getblock", block_hash))["tx"] == [txid]
    raw = await zcash_control.chain.call("getrawtransaction", txid, 1)
    assert (raw["txid"], raw["height"], raw["confirmations"], raw["blockhash"]) == (txid, 1, 1, block_hash)


async def test_reorg_puts_transactions_back_in_the_mempool(zcash_control: RegtestControl) -> None:
    address = await sapling_address(zcash_control)
    txid = await zcash_control.pay(address, "2")
    [mined_in] = await zcash_control.mine(1)
    await zcash_control.mine(1)

    await zcash_control.invalidate(mined_in)
    assert await zcash_control.height() == 0
    [row] = await zcash_control.wallet.call("z_listunspent", 0)
    assert row["confirmations"] == 0
    assert await zcash_control.chain.call("getrawmempool") == [txid]
    assert (await zcash_control.chain.call("getblock", mined_in))["confirmations"] == -1
    raw = await zcash_control.chain.call("getrawtransaction", txid, 1)
    assert "blockhash" not in raw

    await zcash_control.reconsider(mined_in)
    assert await zcash_control.height() == 2
    [row] = await zcash_control.wallet.call("z_listunspent", 0)
    assert row["confirmations"] == 2


async def test_reorg_to_a_longer_branch_mines_the_transaction_again(zcash_control: RegtestControl) -> None:
    address = await sapling_address(zcash_control)
    txid = await zcash_control.pay(address, "2")
    [mined_in] = await zcash_control.mine(1)
    await zcash_control.invalidate(mined_in)
    fork = await zcash_control.mine(2)
    assert (await zcash_control.chain.call("getblock", fork[0]))["tx"] == [txid]
    await zcash_control.reconsider(mined_in)  # the old branch is shorter: the fork stays active
    assert await zcash_control.chain.call("getbestblockhash") == fork[-1]


# --- wallet ----------------------------------------------------------------------------------------------------


async def test_accounts_and_addresses(zcash_control: RegtestControl) -> None:
    account = await zcash_control.new_account()
    call = zcash_control.wallet.call
    first = await call("z_getaddressforaccount", account, ["sapling"], 7)
    assert first["diversifier_index"] == 7 and first["receiver_types"] == ["sapling"]
    assert (await call("z_getaddressforaccount", account, ["sapling"], 7))["address"] == first["address"]
    decoded = decode_address(first["address"])
    assert (decoded.kind, decoded.network, set(decoded.receivers)) == ("unified", ZcashNetwork.REGTEST, {"sapling"})

    both = await call("z_getaddressforaccount", account, ["orchard", "sapling"])
    assert set(decode_address(both["address"]).receivers) == {"orchard", "sapling"}
    assert both["diversifier_index"] != 7 and both["address"] != first["address"]

    with pytest.raises(RpcError) as reused:
        await call("z_getaddressforaccount", account, ["orchard"], 7)
    assert reused.value.code == -4
    with pytest.raises(RpcError) as transparent_only:
        await call("z_getaddressforaccount", account, ["p2pkh"])
    assert transparent_only.value.code == -8

    [listed] = await call("z_listaccounts")
    assert {entry["ua"] for entry in listed["addresses"]} == {first["address"], both["address"]}
    if zcash_control.personality == "zcashd":
        assert listed["account"] == account
        with pytest.raises(RpcError) as unknown:
            await call("z_getaddressforaccount", 5)
        assert unknown.value.code == -8
    else:
        assert listed["account_uuid"] == account and "account" not in first
        assert first["account_uuid"] == account
        with pytest.raises(RpcError) as unknown:
            await call("z_getaddressforaccount", "00000000-0000-0000-0000-000000000000")
        assert unknown.value.code == -4


@pytest.mark.parametrize("zcash_node", ["zcashd"], indirect=True)
async def test_zcashd_listreceivedbyaddress_is_per_address(zcash_control: RegtestControl) -> None:
    account = await zcash_control.new_account()
    call = zcash_control.wallet.call
    target = (await call("z_getaddressforaccount", account, ["sapling"]))["address"]
    other = (await call("z_getaddressforaccount", account, ["sapling"]))["address"]
    txid = await zcash_control.pay_many([(other, "1", None), (target, "0.5", None)])

    [row] = await call("z_listreceivedbyaddress", target, 0)
    assert row == {
        "pool": "sapling", "txid": txid, "amount": Decimal("0.50000000"), "amountZat": 50_000_000,
        "memo": NO_MEMO.hex(), "outindex": 1, "confirmations": 0, "blockheight": 0, "blockindex": -1,
        "blocktime": row["blocktime"], "change": False,
    }
    assert await call("z_listreceivedbyaddress", target) == []  # minconf 1 by default
    await zcash_control.mine(1)
    [row] = await call("z_listreceivedbyaddress", target)
    assert (row["confirmations"], row["blockheight"], row["blockindex"]) == (1, 1, 1)

    bare_receiver = encode_sapling(ZcashNetwork.REGTEST, decode_address(target).receivers["sapling"])
    foreign = encode_unified(ZcashNetwork.REGTEST, {"sapling": bytes(43)})
    for params, code in (([bare_receiver], -8), ([foreign], -5), (["garbage"], -5), ([target, -1], -8)):
        with pytest.raises(RpcError) as refused:
            await call("z_listreceivedbyaddress", *params)
        assert refused.value.code == code, params


@pytest.mark.parametrize("zcash_node", ["zallet"], indirect=True)
async def test_zallet_listunspent_filters_by_account_not_address(zcash_control: RegtestControl) -> None:
    call = zcash_control.wallet.call
    mine, theirs = await zcash_control.new_account(), await zcash_control.new_account()
    first = (await call("z_getaddressforaccount", mine, ["sapling"]))["address"]
    second = (await call("z_getaddressforaccount", mine, ["orchard", "sapling"]))["address"]
    elsewhere = (await call("z_getaddressforaccount", theirs, ["sapling"]))["address"]
    await zcash_control.pay_many([(first, "1", None), (second, "2", None), (elsewhere, "3", None)])

    rows = await call("z_listunspent", 0, 9_999_999, True, [first])
    assert sorted(row["valueZat"] for row in rows) == [100_000_000, 200_000_000]
    assert {row["account_uuid"] for row in rows} == {mine}
    by_value = {row["valueZat"]: row for row in rows}
    sapling = decode_address(first).receivers["sapling"]
    assert by_value[100_000_000]["address"] == encode_sapling(ZcashNetwork.REGTEST, sapling)
    orchard = decode_address(second).receivers["orchard"]
    assert by_value[200_000_000]["address"] == encode_unified(ZcashNetwork.REGTEST, {"orchard": orchard})
    assert "amount" not in rows[0] and rows[0]["value"] == Decimal("1.00000000")


@pytest.mark.parametrize("zcash_node", ["zallet"], indirect=True)
async def test_zallet_transparent_gap_limit(zcash_control: RegtestControl) -> None:
    account = await zcash_control.new_account()
    call = zcash_control.wallet.call
    indices = [(await call("z_getaddressforaccount", account))["diversifier_index"] for _ in range(10)]
    assert indices == list(range(10))
    with pytest.raises(RpcError) as gap:
        await call("z_getaddressforaccount", account)
    assert gap.value.code == -4 and "gap limit" in gap.value.message
    shielded = await call("z_getaddressforaccount", account, ["sapling"])  # shielded-only: no gap limit
    assert shielded["diversifier_index"] > 10


async def test_send_errors_like_zcashd(zcash_control: RegtestControl) -> None:
    address = await sapling_address(zcash_control)

    async def refused_code(*recipient_fields: tuple[str, Any]) -> int:
        with pytest.raises(RpcError) as refused:
            await zcash_control.wallet.send("z_sendmany", "ANY_TADDR", [dict(recipient_fields)])
        return refused.value.code

    assert await refused_code(("address", address), ("amount", Decimal("0.000000001"))) == -3
    assert await refused_code(("address", address), ("amount", Decimal("-1"))) == -3
    assert await refused_code(("address", address), ("amount", 0)) == -8
    assert await refused_code(("address", "tmBogus"), ("amount", 1)) == -5
    assert await refused_code(("address", address), ("amount", 1), ("memo", "zz")) == -8
    with pytest.raises(RpcError) as minconf:
        await zcash_control.wallet.call("z_listunspent", -1)
    assert minconf.value.code == -8
    with pytest.raises(RpcError) as arity:
        await zcash_control.wallet.call("z_sendmany", "ANY_TADDR")
    assert arity.value.code == -32602


async def test_send_to_a_foreign_address_is_allowed_but_not_listed(zcash_control: RegtestControl) -> None:
    foreign = encode_unified(ZcashNetwork.REGTEST, {"sapling": bytes(range(43))})
    txid = await zcash_control.pay(foreign, "1")
    assert await zcash_control.chain.call("getrawmempool") == [txid]
    assert await zcash_control.wallet.call("z_listunspent", 0) == []
    opid_statuses = await zcash_control.wallet.call("z_getoperationresult")
    assert [status["result"]["txid"] for status in opid_statuses] == [txid]
    assert await zcash_control.wallet.call("z_getoperationstatus") == []  # results are removed once read


async def test_transparent_balance_and_address_validation(zcash_control: RegtestControl) -> None:
    account = await zcash_control.new_account()
    address = (await zcash_control.wallet.call("z_getaddressforaccount", account, ["p2pkh", "sapling"]))["address"]
    taddr = decode_address(address).transparent_receiver()
    assert taddr is not None
    await zcash_control.pay(taddr, "0.3")
    balance = await zcash_control.chain.call("getaddressbalance", {"addresses": [taddr]})
    assert balance == {"balance": 0, "received": 0}  # confirmed only
    await zcash_control.mine(1)
    assert (await zcash_control.chain.call("getaddressbalance", taddr))["balance"] == 30_000_000

    valid = await zcash_control.chain.call("validateaddress", taddr)
    assert valid["isvalid"] is True and valid["isscript"] is False
    assert await zcash_control.chain.call("validateaddress", address) == {"isvalid": False}  # transparent only
    z_valid = await zcash_control.chain.call("z_validateaddress", address)
    assert (z_valid["isvalid"], z_valid["address_type"]) == (True, "unified")
    assert z_valid["ismine"] is (zcash_control.personality == "zcashd")  # zebrad never says ismine
    mainnet = encode_unified(ZcashNetwork.MAIN, {"sapling": bytes(43)})
    assert await zcash_control.chain.call("z_validateaddress", mainnet) == {"isvalid": False}


async def test_zcashd_without_address_index_disables_getaddressbalance() -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", address_index=False)
    async with aiohttp.ClientSession() as http:
        status, _, body = await post(http, node.url, rpc("getaddressbalance", "tmBogus"), "pw")
    assert (status, body["error"]["code"]) == (500, -1) and "disabled" in body["error"]["message"]
    await node.stop()


async def test_wallet_sync_lock_control(zcash_control: RegtestControl, zcash_node: RunningNode) -> None:
    code = -28 if zcash_control.personality == "zcashd" else -2
    await zcash_control.set_wallet_syncing(code)
    async with aiohttp.ClientSession() as http:
        status, _, body = await post(http, zcash_node.url, rpc("z_listaccounts"), zcash_node.rpcpassword)
    assert (status, body["error"]["code"]) == (500, code)
    if zcash_control.personality == "zallet":
        wallet_status = await zcash_control.wallet.call("getwalletstatus")
        assert wallet_status["sync_work_remaining"]["unscanned_blocks"] == 1
        assert "fully_synced_height" not in wallet_status  # no account yet
    await zcash_control.set_wallet_syncing(None)
    assert await zcash_control.wallet.call("z_listaccounts") == []
