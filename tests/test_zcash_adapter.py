"""ZcashFundingSource end to end against the regtest stand-in, as zcashd and as Zallet + zebrad."""

from __future__ import annotations

import socket

import pytest

from chains.jsonrpc import JsonRpcClient
from chains.zcash import ZcashFundingSource
from chains.zcash_address import ZcashNetwork, decode_address, encode_transparent, encode_unified
from chains.zcash_scan import OVERLAP_BLOCKS
from kernel.errors import InvalidAddress, ServiceUnavailable
from kernel.funding import FundingRequest, FundingSource, KnownPayment, PaymentTarget, ScansPayments, ScanWindow
from regtest.zcash_node import RunningNode, start_zcash_regtest
from tests.zcash_fixtures import ZCASH_MIN_CONFIRMATIONS, ZCASH_RPC_USER, RegtestControl

REQUEST = FundingRequest(reference="perm-1", asset="ZEC", amount_units=150_000_000)


def source_for(node: RunningNode, **options: object) -> ZcashFundingSource:
    settings: dict[str, object] = {
        "wallet_url": node.url, "node_url": node.node_url, "user": ZCASH_RPC_USER, "password": node.rpcpassword,
        "network": ZcashNetwork.REGTEST, "min_confirmations": ZCASH_MIN_CONFIRMATIONS, "timeout": 2.0,
        "retry_backoff": 0.01,
    }
    settings.update(options)
    return ZcashFundingSource(**settings)  # type: ignore[arg-type]


def target(key: str, address: str, locator: str = "0") -> PaymentTarget:
    return PaymentTarget(key=key, asset="ZEC", payment_address=address, locator=locator)


def test_implements_the_funding_source_protocol(zcash_source: ZcashFundingSource) -> None:
    assert isinstance(zcash_source, FundingSource)
    assert zcash_source.name == "zcash" and zcash_source.min_confirmations == ZCASH_MIN_CONFIRMATIONS


def test_validate_address(zcash_source: ZcashFundingSource) -> None:
    regtest_ua = encode_unified(ZcashNetwork.REGTEST, {"sapling": bytes(43)})
    assert zcash_source.validate_address(f" {regtest_ua.upper()} ") == regtest_ua
    taddr = encode_transparent(ZcashNetwork.TEST, "p2pkh", bytes(20))
    assert zcash_source.validate_address(taddr) == taddr
    with pytest.raises(InvalidAddress):
        zcash_source.validate_address(encode_unified(ZcashNetwork.MAIN, {"sapling": bytes(43)}))
    with pytest.raises(InvalidAddress):
        zcash_source.validate_address("not an address")


async def test_prepare_funding_gives_fresh_sapling_only_addresses(zcash_source: ZcashFundingSource) -> None:
    first = await zcash_source.prepare_funding(REQUEST)
    second = await zcash_source.prepare_funding(REQUEST)
    assert first.payment_address != second.payment_address
    assert first.locator != second.locator and int(first.locator) >= 0
    assert first.checkout_url is None
    decoded = decode_address(first.payment_address or "")
    assert (decoded.kind, set(decoded.receivers)) == ("unified", {"sapling"})


async def test_payments_from_mempool_to_confirmed_and_through_a_reorg(
    zcash_source: ZcashFundingSource, zcash_control: RegtestControl
) -> None:
    paid = await zcash_source.prepare_funding(REQUEST)
    other = await zcash_source.prepare_funding(REQUEST)
    unpaid = await zcash_source.prepare_funding(REQUEST)
    assert paid.payment_address and other.payment_address and unpaid.payment_address
    targets = [target("paid", paid.payment_address), target("other", other.payment_address),
               target("unpaid", unpaid.payment_address), PaymentTarget("no-address", "ZEC", None, "x")]

    first_txid = await zcash_control.pay_many(
        [(other.payment_address, "0.2", None), (paid.payment_address, "1.5", "perm-1")]
    )
    second_txid = await zcash_control.pay(paid.payment_address, "0.00000001")

    found = await zcash_source.find_payments(targets)
    assert set(found) == {"paid", "other", "unpaid", "no-address"}
    assert found["unpaid"] == [] and found["no-address"] == []
    by_txid = {payment.txid: payment for payment in found["paid"]}
    assert set(by_txid) == {first_txid, second_txid}
    first = by_txid[first_txid]
    assert (first.output_index, first.amount_units, first.confirmations, first.block_height, first.memo) == (
        1, 150_000_000, 0, None, "perm-1"
    )
    assert by_txid[second_txid].amount_units == 1 and by_txid[second_txid].memo is None
    [other_payment] = found["other"]
    assert (other_payment.txid, other_payment.output_index, other_payment.amount_units) == (first_txid, 0, 20_000_000)

    [mined_in, _] = await zcash_control.mine(2)
    found = await zcash_source.find_payments(targets)
    assert {(p.confirmations, p.block_height) for p in found["paid"]} == {(2, 1)}
    assert all(p.counts_with(ZCASH_MIN_CONFIRMATIONS) for p in found["paid"])

    await zcash_control.invalidate(mined_in)
    found = await zcash_source.find_payments(targets)
    assert {(p.confirmations, p.block_height) for p in found["paid"]} == {(0, None)}

    await zcash_control.reconsider(mined_in)
    found = await zcash_source.find_payments(targets)
    assert {p.confirmations for p in found["paid"]} == {2}


async def test_scans_the_wallet_from_a_cursor(zcash_source: ZcashFundingSource, zcash_control: RegtestControl) -> None:
    assert isinstance(zcash_source, ScansPayments)
    paid = await zcash_source.prepare_funding(REQUEST)
    await zcash_control.mine(5)
    tip = await zcash_source.chain_tip()
    first = await zcash_source.scan(None, tip, [], None)
    assert first.payments == () and first.window == ScanWindow(None, 5) and first.cursor.unchanged_at(tip)
    assert first.cursor.unchanged_at(await zcash_source.chain_tip())  # nothing happened: nothing to read

    txid = await zcash_control.pay(paid.payment_address or "", "1.5", "perm-1")
    in_mempool = await zcash_source.chain_tip()
    assert in_mempool.block == tip.block and not first.cursor.unchanged_at(in_mempool)
    seen = await zcash_source.scan(first.cursor, in_mempool, [], None)
    [received] = seen.payments
    assert received.address == paid.payment_address and received.asset == "ZEC"
    payment = received.payment
    assert (payment.txid, payment.amount_units, payment.confirmations, payment.memo) == (txid, 150_000_000, 0, "perm-1")

    [block] = await zcash_control.mine(1)
    known = [KnownPayment(txid, payment.output_index, "ZEC", payment.amount_units, None, None)]
    mined = await zcash_source.scan(seen.cursor, await zcash_source.chain_tip(), known, None)
    assert mined.window == ScanWindow(6 - OVERLAP_BLOCKS, 6)
    assert [(p.payment.txid, p.payment.confirmations, p.payment.block_height) for p in mined.payments] == [
        (txid, 1, 6)]

    await zcash_control.invalidate(block)  # the cursor's block leaves the chain: read far back, find it unmined
    await zcash_control.mine(1)
    reorganised = await zcash_source.scan(mined.cursor, await zcash_source.chain_tip(), known, None)
    assert reorganised.window == ScanWindow(0, 6)
    assert [(p.payment.txid, p.payment.confirmations) for p in reorganised.payments] == [(txid, 1)]


async def test_zallet_is_scanned_only_as_far_as_it_has_synced() -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", personality="zallet")
    source = source_for(node)
    control = RegtestControl(node, "zallet", JsonRpcClient(node.url, user=ZCASH_RPC_USER, password="pw"),
                             JsonRpcClient(node.node_url, user=ZCASH_RPC_USER, password="pw"))
    try:
        await source.prepare_funding(REQUEST)  # the wallet's account
        hashes = await control.mine(3)
        assert (await source.chain_tip()).block.height == 3
        await control.set_wallet_syncing(-10)  # still scanning the newest block
        tip = await source.chain_tip()
        assert (tip.block.height, tip.block.hash) == (2, hashes[1])
        assert (await source.scan(None, tip, [], None)).cursor.position == tip.block
    finally:
        for client in (source, control.wallet, control.chain):
            await client.close()
        await node.stop()


async def test_status_of_a_reachable_node(zcash_source: ZcashFundingSource, zcash_control: RegtestControl) -> None:
    [tip] = await zcash_control.mine(1)
    status = await zcash_source.status()
    assert (status.name, status.reachable, status.height, status.tip_hash, status.synced) == (
        "zcash", True, 1, tip, True
    )
    assert status.tip_age_seconds is not None and status.tip_age_seconds >= 0
    assert status.detail == zcash_control.personality


async def test_status_of_an_unreachable_node_never_raises() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = ZcashFundingSource(
        wallet_url=f"http://127.0.0.1:{port}/", user="u", password="p", network=ZcashNetwork.REGTEST,
        min_confirmations=1, retry_backoff=0.01,
    )
    status = await source.status()
    assert (status.reachable, status.height) == (False, None)
    with pytest.raises(ServiceUnavailable) as unavailable:
        await source.prepare_funding(REQUEST)
    assert unavailable.value.code == "zcash_node_unavailable" and unavailable.value.retry_after > 0
    await source.close()


async def test_wrong_credentials_tell_the_operator_without_leaking_them(zcash_node: RunningNode) -> None:
    source = source_for(zcash_node, password="not-the-password")
    with pytest.raises(ServiceUnavailable) as refused:
        await source.prepare_funding(REQUEST)
    assert refused.value.code == "zcash_node_unavailable"
    assert "operator" in refused.value.message and "not-the-password" not in refused.value.message
    assert (await source.status()).reachable is False
    await source.close()


async def test_zallet_sync_lock_is_waited_out(zcash_source: ZcashFundingSource, zcash_control: RegtestControl) -> None:
    code = -28 if zcash_control.personality == "zcashd" else -2
    instructions = await zcash_source.prepare_funding(REQUEST)
    assert instructions.payment_address
    await zcash_control.pay(instructions.payment_address, "1")

    await zcash_control.set_wallet_syncing(code, calls=2)
    found = await zcash_source.find_payments([target("t", instructions.payment_address)])
    assert [p.amount_units for p in found["t"]] == [100_000_000]

    await zcash_control.set_wallet_syncing(code)
    with pytest.raises(ServiceUnavailable) as still_syncing:
        await zcash_source.find_payments([target("t", instructions.payment_address)])
    assert still_syncing.value.code == "zcash_node_unavailable"
    if zcash_control.personality == "zallet":
        status = await zcash_source.status()
        assert (status.reachable, status.synced) == (True, False)
    await zcash_control.set_wallet_syncing(None)


async def test_transparent_balance(zcash_source: ZcashFundingSource, zcash_control: RegtestControl) -> None:
    shielded_only = encode_unified(ZcashNetwork.REGTEST, {"sapling": bytes(43)})
    assert (await zcash_source.wallet_balance(shielded_only, "ZEC")).units == 0

    with_transparent = encode_unified(ZcashNetwork.REGTEST, {"p2pkh": bytes(range(20)), "sapling": bytes(43)})
    taddr = decode_address(with_transparent).transparent_receiver()
    assert taddr is not None
    await zcash_control.pay(taddr, "0.7")
    assert (await zcash_source.wallet_balance(with_transparent, "ZEC")).units == 0  # confirmed only
    await zcash_control.mine(1)
    assert (await zcash_source.wallet_balance(with_transparent, "ZEC")).units == 70_000_000
    assert (await zcash_source.wallet_balance(taddr, "ZEC")).units == 70_000_000


async def test_transparent_balance_without_address_index_is_unknown() -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", address_index=False)
    source = source_for(node)
    assert (await source.wallet_balance(encode_transparent(ZcashNetwork.TEST, "p2pkh", bytes(20)), "ZEC")).units is None
    await source.close()
    await node.stop()


async def test_configured_account(zcash_node: RunningNode, zcash_control: RegtestControl) -> None:
    """An explicit account (number or UUID, or one of its unified addresses) is used instead of the first."""
    await zcash_control.new_account()
    chosen = await zcash_control.new_account()
    known = (await zcash_control.wallet.call("z_getaddressforaccount", chosen, ["sapling"]))["address"]
    for account_setting in (str(chosen), known):
        source = source_for(zcash_node, account=account_setting)
        address = (await source.prepare_funding(REQUEST)).payment_address
        [listed] = [entry for entry in await zcash_control.wallet.call("z_listaccounts")
                    if any(item["ua"] == address for item in entry["addresses"])]
        assert listed.get("account_uuid", listed.get("account")) == chosen
        await source.close()

    missing = source_for(zcash_node, account=encode_unified(ZcashNetwork.REGTEST, {"sapling": bytes(43)}))
    with pytest.raises(ServiceUnavailable, match="operator"):
        await missing.prepare_funding(REQUEST)
    await missing.close()


async def test_first_use_creates_an_account_when_the_wallet_has_none(
    zcash_source: ZcashFundingSource, zcash_control: RegtestControl
) -> None:
    assert await zcash_control.wallet.call("z_listaccounts") == []
    await zcash_source.prepare_funding(REQUEST)
    [account] = await zcash_control.wallet.call("z_listaccounts")
    assert len(account["addresses"]) == 1


async def test_zallet_needs_the_zebrad_url() -> None:
    node = await start_zcash_regtest(rpcuser=ZCASH_RPC_USER, rpcpassword="pw", personality="zallet")
    source = source_for(node, node_url=None)
    with pytest.raises(ServiceUnavailable, match="node_url"):
        await source.prepare_funding(REQUEST)
    await source.close()
    await node.stop()
