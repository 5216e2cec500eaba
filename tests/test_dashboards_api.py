"""The JSON behind the dashboards: the wallet view (permission token), the vendor's own account and key rotation
(vendor key), and the operator's overview, time series and audit trail (operator key)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import ADMIN_KEY, Gateway, zcash_uri

OPERATOR_PATHS = ("/api/v1/admin/overview", "/api/v1/admin/timeseries",
                  "/api/v1/admin/permissions/0f8fad5b-d9cb-469f-a165-70867728950e/audit")


async def test_the_wallet_view_needs_the_token_and_shows_sessions_and_the_ledger(gw: Gateway) -> None:
    for token, code in ((None, "missing_token"), ("pgp_not-a-token", "invalid_token")):
        status, body = await gw.call("GET", "/api/v1/wallet", token=token)
        assert (status, body["error"]["code"]) == (401, code)
    vendor = await gw.create_vendor("Streamy")
    permission = await gw.funded_permission("10", "2.5")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    await gw.backdate_session(opened["session_id"], 720)
    started = await gw.db.fetchval("SELECT started_at FROM sessions WHERE id = $1", opened["session_id"])
    await gw.jobs.billing_tick(at=started + timedelta(seconds=720))

    status, wallet = await gw.call("GET", "/api/v1/wallet", token=permission["permission_token"])
    assert status == 200, wallet
    assert wallet["permission"]["permission_id"] == permission["permission_id"]
    assert wallet["permission"]["remaining_hours"] == "3.800000"
    assert wallet["permission"]["payment_uri"] == zcash_uri(permission, None)
    assert wallet["payment_qr_url"] == f"/pay/{permission['permission_id']}/qr.svg"
    [session] = wallet["open_sessions"]
    assert (session["vendor_name"], session["charged_amount"]) == ("Streamy", "0.50000000")
    # a running session's charges reach the ledger when they settle (hourly, and when it ends)
    assert [(line["kind"], line["amount"]) for line in wallet["ledger"]] == [("funding", "10.00000000")]
    status, ended = await gw.end_session(opened["session_code"])
    assert status == 200
    status, wallet = await gw.call("GET", "/api/v1/wallet", token=permission["permission_token"])
    assert wallet["open_sessions"] == []
    charge, funding = wallet["ledger"]
    assert (charge["kind"], charge["amount"], charge["session_id"]) == ("charge", f"-{ended['amount']}",
                                                                      opened["session_id"])
    assert charge["balance_after"] == wallet["permission"]["remaining_amount"]
    assert (funding["kind"], funding["balance_after"]) == ("funding", "10.00000000")


async def test_a_vendor_sees_its_account_and_rotates_its_own_key(gw: Gateway) -> None:
    vendor = await gw.create_vendor("Acme")
    first = vendor["api_key"]
    status, body = await gw.call("GET", "/api/v1/vendor/account")
    assert (status, body["error"]["code"]) == (401, "missing_api_key")
    status, account = await gw.call("GET", "/api/v1/vendor/account", api_key=first)
    assert status == 200 and account["name"] == "Acme" and account["webhook_url"] is None
    assert [key["key_prefix"] for key in account["keys"]] == [first[:8]]

    status, rotated = await gw.call("POST", "/api/v1/vendor/keys/rotate", api_key=first)
    assert status == 201, rotated
    second = rotated["api_key"]
    assert second != first and rotated["previous_keys_expire_at"] is not None
    for key in (first, second):  # the default overlap keeps the old key working
        assert (await gw.call("GET", "/api/v1/vendor/account", api_key=key))[0] == 200

    status, body = await gw.call("POST", "/api/v1/vendor/keys/rotate", api_key=second,
                                 json={"overlap_seconds": -5})
    assert (status, body["error"]["code"]) == (422, "invalid_overlap")
    status, third = await gw.call("POST", "/api/v1/vendor/keys/rotate", api_key=second, json={"overlap_seconds": 0})
    assert status == 201
    for key, expected in ((first, 401), (second, 401), (third["api_key"], 200)):
        assert (await gw.call("GET", "/api/v1/vendor/account", api_key=key))[0] == expected
    status, account = await gw.call("GET", "/api/v1/vendor/account", api_key=third["api_key"])
    assert [key["live"] for key in account["keys"]] == [True, False, False]


@pytest.mark.parametrize("path", OPERATOR_PATHS)
async def test_operator_endpoints_need_the_operator_key(gw: Gateway, path: str) -> None:
    status, body = await gw.call("GET", path)
    assert (status, body["error"]["code"]) == (401, "missing_api_key")
    vendor = await gw.create_vendor()
    status, body = await gw.call("GET", path, api_key=vendor["api_key"])
    assert (status, body["error"]["code"]) == (403, "invalid_api_key")


async def test_the_operator_overview_shows_what_waits(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    running = await gw.funded_permission("10", "2.5")
    assert (await gw.open_session(running, vendor["vendor_id"]))[0] == 201
    waiting = await gw.create_permission("3", "1")
    await gw.pay(waiting["payment_address"], "1")
    await gw.jobs.watch_payments()
    await gw.jobs.recorded("billing_tick", gw.jobs.billing_tick)

    status, overview = await gw.call("GET", "/api/v1/admin/overview", api_key=ADMIN_KEY)
    assert status == 200, overview
    assert (overview["active_sessions"], overview["active_permissions"],
            overview["permissions_awaiting_payment"]) == (1, 1, 1)
    [awaiting] = overview["awaiting"]
    assert (awaiting["permission_id"], awaiting["amount_to_pay"], awaiting["amount_received"]) == (
        waiting["permission_id"], "3.00000000", "1.00000000")
    [pending] = overview["pending_payments"]
    assert (pending["permission_id"], pending["amount"], pending["confirmations"]) == (
        waiting["permission_id"], "1.00000000", 0)
    [job] = overview["jobs"]
    assert job["job_name"] == "billing_tick" and job["failing"] is False and job["runs"] == 1
    assert overview["webhook_backlog"] == []


async def test_the_operator_time_series_count_sessions_and_revenue(gw: Gateway) -> None:
    for days in ("0", "91", "seven", "1.5"):
        status, body = await gw.call("GET", f"/api/v1/admin/timeseries?days={days}", api_key=ADMIN_KEY)
        assert (status, body["error"]["code"]) == (422, "invalid_days"), days
    status, body = await gw.call("GET", "/api/v1/admin/timeseries?hours=3", api_key=ADMIN_KEY)
    assert (status, body["error"]["code"]) == (422, "unknown_parameter")

    vendor = await gw.create_vendor("Acme")
    permission = await gw.funded_permission("10", "2.5")
    for _ in range(2):
        status, opened = await gw.open_session(permission, vendor["vendor_id"])
        assert status == 201
    await gw.backdate_session(opened["session_id"], 3600)
    status, ended = await gw.end_session(opened["session_code"])
    assert status == 200

    status, series = await gw.call("GET", "/api/v1/admin/timeseries?days=2", api_key=ADMIN_KEY)
    assert status == 200, series
    assert series["days"] == 2 and len(series["active_sessions"]) == 48
    assert series["active_sessions"][-1]["sessions"] == 2  # both were active during this hour
    assert series["active_sessions"][0]["sessions"] == 0
    [revenue] = series["revenue"]
    assert (revenue["vendor_name"], revenue["asset"], revenue["amount"]) == ("Acme", "ZEC", ended["amount"])


async def test_the_audit_trail_of_a_permission(gw: Gateway) -> None:
    status, body = await gw.call("GET", "/api/v1/admin/permissions/0f8fad5b-d9cb-469f-a165-70867728950e/audit",
                                 api_key=ADMIN_KEY)
    assert (status, body["error"]["code"]) == (404, "permission_not_found")
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 360)
    await gw.end_session(opened["session_code"])

    status, trail = await gw.call("GET", f"/api/v1/admin/permissions/{permission['permission_id']}/audit",
                                  api_key=ADMIN_KEY)
    assert status == 200, trail
    assert (trail["funding_source"], trail["asset"], trail["status"]) == ("zcash", "ZEC", "active")
    assert trail["changes"][0]["action"] == "created"
    assert ("pending_payment", "active") in [(c["old_status"], c["new_status"]) for c in trail["changes"]]
    assert [line["kind"] for line in trail["ledger"]] == ["funding", "charge"]
    assert trail["ledger"][0]["amount"] == "10.00000000"
    assert trail["changes"][-1]["new_balance"] == trail["ledger"][-1]["balance_after"]
