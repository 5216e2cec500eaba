"""The client's methods against a real gateway (test database, the Zcash stand-in, anvil, the Stripe stand-in), each
test once with `AsyncPayGo` and once with the blocking `PayGo`: the seed's flows for the three funding sources, the
live balance, vendor paging and CSV, operator calls, and errors raised with the API's codes."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from paygo_client import errors
from paygo_client.models import CreatedPermission, Permission, Session, VendorSession

from billing.charging import billing_tick
from billing.events import publish_session_updates
from gateway.keys import REDIS
from tests.client.conftest import funded
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway, new_transparent_wallet, new_wallet
from tests.ethereum_fixtures import ETH_MIN_CONFIRMATIONS, ONE_ETH, EthGateway
from tests.stripe_fixtures import CardGateway


async def test_zcash_round_with_the_live_balance(gw: Gateway, client_for: Any, request: pytest.FixtureRequest) -> None:
    anyone = client_for(gw.client)
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    vendor = await operator.create_vendor("streamer")
    wallet = new_wallet()

    created = await anyone.create_zcash_permission(wallet, Decimal("10"), "2.5", duration_days=7)
    assert isinstance(created, CreatedPermission) and created.permission_token.startswith("pgp_")
    assert created.status == "pending_payment" and created.funding_source == "zcash"
    assert created.amount_to_pay == Decimal("10") and isinstance(created.amount_to_pay, Decimal)
    assert created.max_streaming_hours == Decimal("4") and created.expires_at.tzinfo is not None

    await gw.pay(created.payment_address, "4")
    await gw.mine(MIN_CONFIRMATIONS)
    with pytest.raises(errors.WaitTimeout) as waited:
        await anyone.wait_until_active(created, timeout=0.2, interval=0.05)
    assert waited.value.last.amount_missing == Decimal("6")
    await gw.pay(created.payment_address, "6")
    await gw.mine(MIN_CONFIRMATIONS)
    active = await anyone.wait_until_active(created, timeout=10, interval=0.05)
    assert active.status == "active" and active.remaining_amount == Decimal("10")
    assert [payment.amount for payment in active.payments] == [Decimal("4"), Decimal("6")]

    user = client_for(gw.client, permission_token=created.permission_token)
    shown = await user.get_permission(created.permission_id)
    assert isinstance(shown, Permission) and shown.status == "active" and shown.rate_per_hour == Decimal("2.5")
    assert (await user.get_wallet_permission(wallet)).permission_id == created.permission_id
    assert (await operator.get_wallet_permission(wallet)).permission_id == created.permission_id

    opened = await user.open_session(wallet, vendor.vendor_id)
    assert opened.status == "active"
    updates: list[Session] = []

    async def watch() -> None:
        async for update in user.live(opened.session_code):
            updates.append(update)

    watching = asyncio.create_task(watch())
    request.addfinalizer(watching.cancel)
    await _until(lambda: len(updates) == 1)
    assert updates[0].charged_amount == Decimal("0") and updates[0].remaining_hours == Decimal("4")

    await gw.backdate_session(opened.session_id, 1800)
    await billing_tick(gw.database)
    await publish_session_updates(gw.client.app[REDIS], [opened.session_id])
    await _until(lambda: len(updates) == 2)
    assert updates[1].status == "active" and Decimal("1.25") <= updates[1].charged_amount < Decimal("1.26")
    now = await user.get_session(opened.session_code)
    assert now.charged_amount == updates[1].charged_amount
    assert now.remaining_amount == Decimal("10") - now.charged_amount

    ended = await anyone.end_session(opened.session_code)
    await publish_session_updates(gw.client.app[REDIS], [opened.session_id])
    await asyncio.wait_for(watching, 10)  # the stream ends after the final state
    assert ended.status == "confirmed" and ended.amount == updates[-1].charged_amount
    assert updates[-1].status == "ended" and updates[-1].is_final
    assert await anyone.end_session(opened.session_code) == ended  # ending again charges nothing more


async def _until(condition: Any, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_errors_carry_the_api_codes(gw: Gateway, client_for: Any) -> None:
    anyone = client_for(gw.client)
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    vendor = await operator.create_vendor("strict")
    created = await anyone.create_zcash_permission(new_wallet(), "10", "2.5")

    with pytest.raises(errors.PermissionNotFunded) as refused:
        await anyone.open_session(created.user_wallet_address, vendor.vendor_id, token=created.permission_token)
    assert refused.value.status == 402 and refused.value.code == "permission_not_funded"
    assert isinstance(refused.value, errors.PaymentRequired) and refused.value.request_id
    with pytest.raises(errors.MissingToken):
        await anyone.get_permission(created.permission_id)
    with pytest.raises(errors.InvalidToken):
        await anyone.get_permission(created.permission_id, token="pgp_not-a-token")
    with pytest.raises(errors.SessionNotFound):
        await anyone.end_session("no-such-session")
    with pytest.raises(errors.InvalidAmount) as invalid:
        await anyone.create_zcash_permission(new_wallet(), "10.0000000001", "2.5")
    assert "requested_amount" in invalid.value.message
    with pytest.raises(errors.Forbidden) as forbidden:  # a code the client has no class for: by status
        await client_for(gw.client, operator_key="not-the-operator-key").create_vendor("x")
    assert forbidden.value.code == "invalid_api_key"
    with pytest.raises(TypeError):
        await anyone.create_zcash_permission(new_wallet(), 10.0, "2.5")

    key = "caller-chosen-key-" + "k" * 32
    first = await anyone.create_zcash_permission(created.user_wallet_address, "1", "1", idempotency_key=key)
    again = await anyone.create_zcash_permission(created.user_wallet_address, "1", "1", idempotency_key=key)
    assert again.permission_id == first.permission_id
    with pytest.raises(errors.IdempotencyKeyReused):
        await anyone.create_zcash_permission(created.user_wallet_address, "2", "1", idempotency_key=key)


async def test_zcash_balance(gw: Gateway, client_for: Any) -> None:
    paygo = client_for(gw.client)
    taddr = new_transparent_wallet()
    await gw.pay(taddr, "5")
    await gw.mine(1)
    balance = await paygo.zcash_balance(taddr, rate_per_hour="2.5")
    assert balance.transparent_balance == Decimal("5") and balance.estimated_hours == Decimal("2")
    shielded = await paygo.zcash_balance(new_wallet())
    assert shielded.shielded_balance is None and shielded.shielded_balance_reason


async def test_ethereum_permission_signed_with_the_callers_key(eth_gw: EthGateway, client_for: Any) -> None:
    paygo = client_for(eth_gw.gw.client)
    account = await eth_gw.anvil.new_account()
    created = await paygo.create_ethereum_permission(account, "1.5", Decimal("0.25"), duration_days=7)
    assert created.funding_source == "ethereum" and created.asset == "ETH"
    assert created.payment_address == eth_gw.service_address and created.amount_to_pay == Decimal("1.5")

    tx_hash = await eth_gw.pay_eth(account, 3 * ONE_ETH // 2)
    await eth_gw.anvil.mine(ETH_MIN_CONFIRMATIONS)
    active = await paygo.wait_until_active(created, tx_hashes=[tx_hash], timeout=10, interval=0.05)
    assert active.status == "active" and active.remaining_amount == Decimal("1.5")
    assert (await paygo.get_permission(created.permission_id, source="ethereum",
                                       token=created.permission_token)).status == "active"

    balance = await paygo.ethereum_balance(account.address, rate_per_hour="0.25")
    assert balance.asset == "ETH" and balance.block_number > 0
    assert Decimal("998") < balance.total_balance < Decimal("998.5")

    typed = await paygo.ethereum_typed_data(account.address, "1", "0.5")
    other = await eth_gw.anvil.new_account()
    forged = other.sign_typed_data(full_message=typed).signature.to_0x_hex()
    with pytest.raises(errors.SignerMismatch):
        await paygo.create_signed_ethereum_permission(
            account.address, "1", "0.5", chain_id=typed["domain"]["chainId"], nonce=typed["message"]["nonce"],
            expiry=typed["message"]["expiry"], signature=forged)


async def test_card_permission_paid_through_checkout_and_refunded(card: CardGateway, client_for: Any) -> None:
    paygo = client_for(card.gw.client)
    operator = client_for(card.gw.client, operator_key=ADMIN_KEY)
    created = await paygo.create_card_permission("buyer@example.com", "10.00", "2.50")
    assert created.funding_source == "card" and created.checkout_url and created.payment_address is None

    await card.deliver("checkout.session.completed",
                       card.stripe.pay_session(card.session_id({"permission_id": created.permission_id})))
    active = await paygo.wait_until_active(created, timeout=10, interval=0.05)
    assert active.status == "active" and active.remaining_amount == Decimal("10.00")
    assert active.refunded_amount == Decimal("0") and active.checkout_url == created.checkout_url
    shown = await operator.get_wallet_permission("buyer@example.com", source="card")
    assert shown.permission_id == created.permission_id

    refund = await paygo.refund_card_permission(created.permission_id, token=created.permission_token)
    assert refund.refund_amount == Decimal("10.00") and refund.status == "closed"
    with pytest.raises(errors.PermissionNotActivated):
        await paygo.wait_until_active(created, timeout=1, interval=0.05)


async def test_vendor_paging_csv_and_summary(gw: Gateway, client_for: Any) -> None:
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    created_vendor = await operator.create_vendor("pager")
    vendor = client_for(gw.client, vendor_key=created_vendor.api_key)
    user = client_for(gw.client)
    permission = await funded(gw, user)
    opened = []
    for seconds in (180, 120, 60):
        session = await user.open_session(permission.user_wallet_address, created_vendor.vendor_id,
                                          token=permission.permission_token)
        await gw.backdate_session(session.session_id, seconds)
        await user.end_session(session.session_code)
        opened.append(session.session_id)

    first = await vendor.list_vendor_sessions(limit=2)
    assert len(first.sessions) == 2 and first.next_cursor is not None
    walked = [session async for session in vendor.iter_vendor_sessions(page_size=1)]
    assert [session.session_id for session in walked] == opened[::-1]  # newest first, one page each
    assert all(isinstance(session, VendorSession) and session.status == "ended" for session in walked)
    today = datetime.now(UTC).date()
    assert len([s async for s in vendor.iter_vendor_sessions(status=["ended"], started_from=today,
                                                             started_to=today + timedelta(days=1))]) == 3
    assert [s async for s in vendor.iter_vendor_sessions(status="active")] == []

    detail = await vendor.get_vendor_session(opened[0])
    assert detail.charges and sum(line.amount for line in detail.charges) == -detail.charged_amount

    buffer = io.BytesIO()
    written = await vendor.download_vendor_sessions_csv(buffer, wallet=permission.user_wallet_address)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue().decode())))
    assert written == len(buffer.getvalue()) and len(rows) == 3
    assert {row["session_id"]: Decimal(row["charged_amount"]) for row in rows} == {
        session.session_id: session.charged_amount for session in walked}

    summary = await vendor.vendor_charges_summary(group_by="day")
    [row] = summary.rows
    assert row.day == today and row.asset == "ZEC" and row.sessions == 3
    assert row.amount == sum(session.charged_amount for session in walked)
    with pytest.raises(errors.Unauthorized):
        await client_for(gw.client).list_vendor_sessions()


async def test_operator_calls_and_health(gw: Gateway, client_for: Any) -> None:
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    created = await operator.create_vendor("keyed", direct_charge_grace_seconds=60)
    keys = await operator.list_vendor_keys(created.vendor_id)
    assert len(keys.keys) == 1 and keys.keys[0].live
    rotated = await operator.rotate_vendor_key(created.vendor_id, overlap_seconds=0)
    assert rotated.api_key != created.api_key and rotated.previous_keys_expire_at is not None
    await client_for(gw.client, vendor_key=rotated.api_key).list_vendor_sessions()
    revoked = await operator.revoke_vendor_keys(created.vendor_id, key_prefix=rotated.key_prefix)
    assert revoked.revoked == 1
    with pytest.raises(errors.Unauthorized) as refused:
        await client_for(gw.client, vendor_key=rotated.api_key).list_vendor_sessions()
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(errors.VendorNotFound):
        await operator.list_vendor_keys("00000000-0000-0000-0000-000000000000")

    health = await operator.health()
    assert health.status in ("ok", "degraded") and health.checks["database"].ok
    assert (await operator.health_live()).status == "alive"
    assert await operator.health_ready() is True
    assert "paygo_database_up" in await operator.metrics()
    assert (await operator.openapi())["info"]["title"] == "PayGo"
