"""Payment request URIs (ZIP-321, EIP-681) and the checkout phase, as pure functions of exact integers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from billing.checkout import CheckoutPhase, checkout_progress
from billing.payment_uri import eip681_uri, zec_amount, zip321_uri
from billing.permissions import PaymentRow, PaymentStatus, Permission, PermissionStatus

ZAT = 100_000_000
SAPLING = "ztestsapling10yy2ex5dcqkclhc7z7yrnjq2z6feyjad56ptwlfgmy77dmaqqrl9gyhprdx59qgmsnyfska2kez"
TRANSPARENT = "tmEZhbWHTpdKMw5it8YDspUXSMGQyFwovpU"
SERVICE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
# ZIP-321's grammar for one payment in the hier-part: zcash:<address>[?param(&param)*]
ZIP321 = re.compile(r"zcash:[A-Za-z0-9]+(\?(amount=[0-9]+(\.[0-9]{1,8})?|memo=[A-Za-z0-9_-]*|message=[^&]*)"
                    r"(&(amount=[0-9]+(\.[0-9]{1,8})?|memo=[A-Za-z0-9_-]*|message=[^&]*))*)?")


@pytest.mark.parametrize(("units", "text"), [
    (10 * ZAT, "10"), (ZAT // 2, "0.5"), (1, "0.00000001"), (123_456_000_00, "123.456"), (0, "0"),
    (21_000_000 * ZAT, "21000000"),
])
def test_zec_amounts_are_decimal_zec_without_trailing_zeros(units: int, text: str) -> None:
    assert zec_amount(units) == text
    assert ZIP321.fullmatch(zip321_uri(SAPLING, units))


@pytest.mark.parametrize("units", [-1, 21_000_000 * ZAT + 1])
def test_zec_amounts_outside_the_supply_are_refused(units: int) -> None:
    with pytest.raises(ValueError):
        zec_amount(units)


def test_zip321_reproduces_the_specifications_examples() -> None:
    assert zip321_uri(SAPLING, ZAT, memo=b"This is a simple memo.", message="Thank you for your purchase") == (
        f"zcash:{SAPLING}?amount=1&memo=VGhpcyBpcyBhIHNpbXBsZSBtZW1vLg&message=Thank%20you%20for%20your%20purchase")
    # base64url (`-` and `_`, never `+`, `/` or `=`), for a memo that needs them
    unicode_memo = "This is a unicode memo ✨🦄🏆🎉".encode()
    assert zip321_uri(SAPLING, 78_900_000, memo=unicode_memo) == (
        f"zcash:{SAPLING}?amount=0.789&memo=VGhpcyBpcyBhIHVuaWNvZGUgbWVtbyDinKjwn6aE8J-PhvCfjok")
    assert zip321_uri(TRANSPARENT) == f"zcash:{TRANSPARENT}"


def test_zip321_refuses_what_the_specification_forbids() -> None:
    with pytest.raises(ValueError, match="transparent"):
        zip321_uri(TRANSPARENT, ZAT, memo=b"memo")
    with pytest.raises(ValueError, match="512"):
        zip321_uri(SAPLING, ZAT, memo=bytes(513))
    with pytest.raises(ValueError):
        zip321_uri("zs1?amount=1", ZAT)
    assert zip321_uri(SAPLING, None, memo=bytes(512)).startswith(f"zcash:{SAPLING}?memo=AAAA")


def test_eip681_for_ether_and_for_an_erc20_transfer() -> None:
    assert eip681_uri(SERVICE, 1, 15 * 10**17) == f"ethereum:{SERVICE}@1?value=1500000000000000000"
    assert eip681_uri(SERVICE, 31337, 12_500_000, token_contract=TOKEN) == (
        f"ethereum:{TOKEN}@31337/transfer?address={SERVICE}&uint256=12500000")
    assert eip681_uri(SERVICE, 1) == f"ethereum:{SERVICE}@1"
    assert eip681_uri(SERVICE, 1, token_contract=TOKEN) == f"ethereum:{TOKEN}@1/transfer?address={SERVICE}"
    for bad in ({"service_address": "0x123", "chain_id": 1}, {"service_address": SERVICE, "chain_id": 0},
                {"service_address": SERVICE, "chain_id": 1, "amount_units": -1}):
        with pytest.raises(ValueError):
            eip681_uri(**bad)  # type: ignore[arg-type]


NOW = datetime(2026, 6, 1, tzinfo=UTC)


def permission(status: PermissionStatus = PermissionStatus.PENDING_PAYMENT, *, funded: int = 0,
               expires_in: timedelta = timedelta(days=30)) -> Permission:
    return Permission(
        id=uuid4(), funding_source="zcash", asset="ZEC", asset_decimals=8, user_wallet_address="zs1payer",
        approved_amount=10 * ZAT,
        rate_per_hour=ZAT, duration_days=30, status=status, balance=funded, funded_amount=funded, charged_amount=0,
        payment_address="zs1pay", payment_locator="0", checkout_url=None, created_at=NOW - timedelta(hours=1),
        activated_at=None, expires_at=NOW + expires_in, payment_due_at=NOW + timedelta(hours=23))


def payment(amount: int, confirmations: int, status: str = "seen") -> PaymentRow:
    return PaymentRow(txid=uuid4().hex, output_index=0, amount=amount, confirmations=confirmations,
                      block_height=None, status=PaymentStatus(status), first_seen_at=NOW)


@pytest.mark.parametrize(("state", "payments", "phase", "missing"), [
    (permission(), [], CheckoutPhase.WAITING, 10 * ZAT),
    (permission(), [payment(10 * ZAT, 0)], CheckoutPhase.SEEN, 0),
    (permission(), [payment(4 * ZAT, 3), payment(6 * ZAT, 1)], CheckoutPhase.CONFIRMING, 0),
    (permission(funded=4 * ZAT), [payment(4 * ZAT, 3, "credited")], CheckoutPhase.PARTIAL, 6 * ZAT),
    (permission(funded=4 * ZAT), [payment(4 * ZAT, 3, "credited"), payment(6 * ZAT, 2)],
     CheckoutPhase.CONFIRMING, 0),  # deep enough, not credited yet: the next watcher pass activates it
    (permission(PermissionStatus.ACTIVE, funded=10 * ZAT), [payment(10 * ZAT, 2, "credited")],
     CheckoutPhase.ACTIVE, 0),
    (permission(expires_in=-timedelta(seconds=1)), [payment(ZAT, 2, "late")], CheckoutPhase.EXPIRED, 10 * ZAT),
    (permission(PermissionStatus.EXHAUSTED, funded=10 * ZAT), [payment(10 * ZAT, 9, "credited")],
     CheckoutPhase.EXHAUSTED, 0),
])
def test_the_checkout_phase_follows_the_payments(state: Permission, payments: list[PaymentRow],
                                                 phase: CheckoutPhase, missing: int) -> None:
    progress = checkout_progress(state, payments, NOW, confirmations_required=2)
    assert progress.phase == phase
    assert progress.missing == missing


def test_over_late_and_orphaned_payments_are_counted_apart() -> None:
    progress = checkout_progress(
        permission(PermissionStatus.ACTIVE, funded=12 * ZAT),
        [payment(12 * ZAT, 5, "credited"), payment(ZAT, 3, "late"), payment(2 * ZAT, -1, "orphaned"),
         payment(ZAT // 2, 0)],
        NOW, confirmations_required=2)
    assert (progress.received, progress.credited, progress.overpaid) == (12 * ZAT + ZAT // 2, 12 * ZAT,
                                                                         2 * ZAT + ZAT // 2)
    assert (progress.late, progress.orphaned_payments, progress.confirmations_seen) == (ZAT, 1, 0)
