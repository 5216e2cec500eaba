"""The client's methods for the JSON behind the pages, against a real gateway (test database, the Zcash stand-in,
the Stripe stand-in), each test once with `AsyncPayGo` and once with the blocking `PayGo`: the public checkout state
and the wallet view (permission token) of Zcash and card permissions, the vendor's own account and key rotation
(vendor key), and the operator's overview, time series and audit trail (operator key)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from paygo_client import errors
from paygo_client.models import AuditTrail, Checkout, OperatorOverview, OperatorTimeseries, VendorAccount, Wallet

from tests.client.conftest import funded
from tests.conftest import ADMIN_KEY, MIN_CONFIRMATIONS, Gateway, new_wallet
from tests.stripe_fixtures import CardGateway

NO_SUCH_PERMISSION = "0f8fad5b-d9cb-469f-a165-70867728950e"


async def test_the_checkout_follows_a_payment_and_the_wallet_shows_its_ledger(gw: Gateway, client_for: Any) -> None:
    anyone = client_for(gw.client)
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    vendor = await operator.create_vendor("Streamy")
    created = await anyone.create_zcash_permission(new_wallet(), "10", "2.5")
    assert created.checkout_url and created.checkout_url.endswith(f"/pay/{created.permission_id}")
    assert created.payment_uri is not None
    assert created.payment_uri.startswith(f"zcash:{created.payment_address}?amount=10&memo=")  # names the permission

    waiting = await anyone.get_checkout(created.permission_id)
    assert isinstance(waiting, Checkout) and waiting.phase == "waiting" and waiting.funding_source == "zcash"
    assert waiting.amount_missing == Decimal("10") and isinstance(waiting.amount_missing, Decimal)
    assert waiting.max_streaming_hours == Decimal("4") and waiting.payments == []
    assert waiting.payment_qr_url == f"/pay/{created.permission_id}/qr.svg?amount=10.00000000"
    assert waiting.payment_window_seconds and waiting.server_time.tzinfo is not None

    await gw.pay(created.payment_address, "10")
    await gw.jobs.watch_payments()
    seen = await anyone.get_checkout(created.permission_id)
    assert (seen.phase, seen.confirmations_seen, seen.amount_received) == ("seen", 0, Decimal("10"))
    await gw.mine(MIN_CONFIRMATIONS)
    await gw.jobs.watch_payments()
    active = await anyone.get_checkout(created.permission_id)
    assert (active.phase, active.amount_credited, active.payment_window_seconds) == ("active", Decimal("10"), None)
    [payment] = active.payments
    assert payment.status == "credited" and payment.amount == Decimal("10")
    with pytest.raises(errors.PermissionNotFound):
        await anyone.get_checkout(NO_SUCH_PERMISSION)

    user = client_for(gw.client, permission_token=created.permission_token)
    opened = await user.open_session(created.user_wallet_address, vendor.vendor_id)
    wallet = await user.get_wallet()
    assert isinstance(wallet, Wallet) and wallet.permission.permission_id == created.permission_id
    assert wallet.permission.payment_uri is not None  # a top-up of any amount: no amount asked
    assert wallet.permission.payment_uri.startswith(f"zcash:{created.payment_address}?memo=")
    [session] = wallet.open_sessions
    assert (session.session_id, session.vendor_name, session.rate_per_hour) == (
        opened.session_id, "Streamy", Decimal("2.5"))
    [funding] = wallet.ledger
    assert (funding.kind, funding.amount, funding.balance_after) == ("funding", Decimal("10"), Decimal("10"))

    await gw.backdate_session(opened.session_id, 720)
    ended = await anyone.end_session(opened.session_code)
    wallet = await anyone.get_wallet(token=created.permission_token)
    assert wallet.open_sessions == []
    charge, funding = wallet.ledger  # newest first
    assert (charge.kind, charge.amount, charge.session_id) == ("charge", -ended.amount, opened.session_id)
    assert charge.balance_after == wallet.permission.remaining_amount == Decimal("10") - ended.amount
    with pytest.raises(errors.MissingToken):
        await anyone.get_wallet()
    with pytest.raises(errors.InvalidToken):
        await anyone.get_wallet(token="pgp_not-a-token")


async def test_a_card_permission_checks_out_on_stripe(card: CardGateway, client_for: Any) -> None:
    paygo = client_for(card.gw.client)
    created = await paygo.create_card_permission("buyer@example.com", "10.00", "2.50")
    waiting = await paygo.get_checkout(created.permission_id)
    assert (waiting.funding_source, waiting.phase, waiting.amount_to_pay) == ("card", "waiting", Decimal("10.00"))
    assert waiting.card_checkout_url == created.checkout_url
    assert waiting.payment_uri is None and waiting.payment_qr_url is None and waiting.payment_address is None

    await card.deliver("checkout.session.completed",
                       card.stripe.pay_session(card.session_id({"permission_id": created.permission_id})))
    assert (await paygo.get_checkout(created.permission_id)).phase == "active"
    wallet = await paygo.get_wallet(token=created.permission_token)
    assert wallet.permission.status == "active" and wallet.permission.payment_uri is None
    assert [(line.kind, line.amount) for line in wallet.ledger] == [("funding", Decimal("10.00"))]
    assert wallet.payment_qr_url is None


async def test_a_vendor_reads_its_account_and_rotates_its_own_key(signing_gw: Gateway, client_for: Any) -> None:
    gw = signing_gw  # webhooks need the signing key
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    created = await operator.create_vendor("Acme")
    first = client_for(gw.client, vendor_key=created.api_key)
    account = await first.get_vendor_account()
    assert isinstance(account, VendorAccount) and (account.vendor_id, account.name) == (created.vendor_id, "Acme")
    assert account.webhook_url is None and [key.key_prefix for key in account.keys] == [created.api_key[:8]]
    await operator.set_vendor_webhook(created.vendor_id, "https://acme.example/paygo")
    assert (await first.get_vendor_account()).webhook_url == "https://acme.example/paygo"
    with pytest.raises(errors.Unauthorized):
        await client_for(gw.client).get_vendor_account()

    key = "vendor-rotation-key-" + "r" * 32
    rotated = await first.rotate_own_vendor_key(idempotency_key=key)
    assert rotated.vendor_id == created.vendor_id and rotated.api_key != created.api_key
    assert rotated.previous_keys_expire_at is not None and rotated.previous_keys_expire_at > datetime.now(UTC)
    assert await first.rotate_own_vendor_key(idempotency_key=key) == rotated  # applied once, its answer replayed
    second = client_for(gw.client, vendor_key=rotated.api_key)
    assert (await first.get_vendor_account()).name == (await second.get_vendor_account()).name == "Acme"

    with pytest.raises(errors.InvalidRequest) as refused:
        await second.rotate_own_vendor_key(overlap_seconds=-5)
    assert refused.value.code == "invalid_overlap"
    third = await second.rotate_own_vendor_key(overlap_seconds=0)
    for stale in (first, second):
        with pytest.raises(errors.Unauthorized):
            await stale.get_vendor_account()
    account = await client_for(gw.client, vendor_key=third.api_key).get_vendor_account()
    assert [key.live for key in account.keys] == [True, False, False]
    assert account.keys[0].key_prefix == third.key_prefix


async def test_the_operator_overview_shows_what_runs_and_what_waits(signing_gw: Gateway, client_for: Any) -> None:
    gw = signing_gw  # a vendor webhook fills the backlog
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    anyone = client_for(gw.client)
    vendor = await operator.create_vendor("Acme")
    await operator.set_vendor_webhook(vendor.vendor_id, "https://acme.example/paygo")
    running = await funded(gw, anyone)
    await anyone.open_session(running.user_wallet_address, vendor.vendor_id, token=running.permission_token)
    waiting = await anyone.create_zcash_permission(new_wallet(), "3", "1")
    await gw.pay(waiting.payment_address, "1")
    await gw.jobs.watch_payments()
    await gw.jobs.recorded("billing_tick", gw.jobs.billing_tick)

    overview = await operator.operator_overview()
    assert isinstance(overview, OperatorOverview)
    assert (overview.active_sessions, overview.active_permissions, overview.permissions_awaiting_payment) == (1, 1, 1)
    [awaiting] = overview.awaiting
    assert (awaiting.permission_id, awaiting.amount_to_pay, awaiting.amount_received) == (
        waiting.permission_id, Decimal("3"), Decimal("1"))
    assert isinstance(awaiting.amount_received, Decimal) and awaiting.payment_due_at is not None
    [pending] = overview.pending_payments
    assert (pending.permission_id, pending.amount, pending.confirmations) == (waiting.permission_id, Decimal("1"), 0)
    [job] = overview.jobs
    assert (job.job_name, job.runs, job.failing) == ("billing_tick", 1, False)
    assert job.last_succeeded_at is not None and job.last_succeeded_at.tzinfo is not None
    [backlog] = overview.webhook_backlog  # session.started, not delivered yet (no delivery job runs here)
    assert (backlog.kind, backlog.event_type, backlog.status, backlog.messages) == (
        "vendor_webhook", "session.started", "pending", 1)
    with pytest.raises(errors.Unauthorized) as refused:  # a client sends only the credential of the call's role
        await client_for(gw.client, vendor_key=vendor.api_key).operator_overview()
    assert refused.value.code == "missing_api_key"


async def test_the_operator_time_series_and_audit_trail(gw: Gateway, client_for: Any) -> None:
    operator = client_for(gw.client, operator_key=ADMIN_KEY)
    anyone = client_for(gw.client)
    vendor = await operator.create_vendor("Acme")
    permission = await funded(gw, anyone)
    opened = await anyone.open_session(permission.user_wallet_address, vendor.vendor_id,
                                       token=permission.permission_token)
    await gw.backdate_session(opened.session_id, 3600)
    ended = await anyone.end_session(opened.session_code)

    series = await operator.operator_timeseries(days=2)
    assert isinstance(series, OperatorTimeseries) and series.days == 2 and len(series.active_sessions) == 48
    assert series.active_sessions[-1].sessions == 1 and series.active_sessions[-1].hour.tzinfo is not None
    [revenue] = series.revenue
    assert (revenue.vendor_id, revenue.vendor_name, revenue.asset) == (vendor.vendor_id, "Acme", "ZEC")
    assert revenue.amount == ended.amount and isinstance(revenue.amount, Decimal)
    assert revenue.day == datetime.now(UTC).date()  # the day its charge was written
    assert (await operator.operator_timeseries()).days == 7
    with pytest.raises(errors.InvalidRequest) as refused:
        await operator.operator_timeseries(days=91)
    assert refused.value.code == "invalid_days"

    trail = await operator.get_permission_audit(permission.permission_id)
    assert isinstance(trail, AuditTrail)
    assert (trail.funding_source, trail.asset, trail.status) == ("zcash", "ZEC", "active")
    assert trail.changes[0].action == "created" and trail.changes[0].old_balance is None
    assert ("pending_payment", "active") in [(change.old_status, change.new_status) for change in trail.changes]
    assert [line.kind for line in trail.ledger] == ["funding", "charge"]  # oldest first
    assert trail.ledger[0].amount == Decimal("10") and trail.ledger[1].amount == -ended.amount
    assert trail.changes[-1].new_balance == trail.ledger[-1].balance_after == Decimal("10") - ended.amount
    with pytest.raises(errors.PermissionNotFound):
        await operator.get_permission_audit(NO_SUCH_PERMISSION)
