"""Idempotency without secrets (issue 10, findings 1 and 2): a database dump after idempotent creates, key rotations
and session opens holds no token, key, webhook secret or session code (plain or hex); a replay reaches only the
same caller, after authentication; anonymous keys must be unguessable; records expire after 24 hours."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from billing.delivery import deliver_due
from billing.outbound import WebhookSender
from billing.outbox import RetryPolicy
from paygo.embedded import postgres_bin_dir
from tests.conftest import ADMIN_KEY, Gateway, new_wallet
from tests.webhook_fixtures import WEBHOOK_SIGNING_KEY, WebhookReceiver


def long_key() -> str:
    return secrets.token_urlsafe(32)


async def database_dump(dsn: str) -> str:
    """What a thief of the database gets: pg_dump's data, as text."""
    process = await asyncio.create_subprocess_exec(str(postgres_bin_dir() / "pg_dump"), "--data-only", "--dbname",
                                                   dsn, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode()


def leaked(dump: str, secret: str) -> bool:
    return secret in dump or secret.encode().hex() in dump


async def test_a_database_dump_after_idempotent_answers_holds_no_secret(signing_gw: Gateway,
                                                                        database_dsn: str) -> None:
    gw = signing_gw
    shown: list[str] = [ADMIN_KEY, WEBHOOK_SIGNING_KEY]
    body = {"user_wallet_address": new_wallet(), "requested_amount": "10", "rate_per_hour": "2.5",
            "notify_url": "https://example.com/hook"}
    key = {"Idempotency-Key": long_key()}
    status, created = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers=key)
    assert status == 201
    status, replayed = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers=key)
    assert status == 201 and replayed == created  # the same caller still gets the answer back
    shown += [created["permission_token"], created["notify_secret"]]

    status, vendor = await gw.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY, json={"name": "v"},
                                   headers={"Idempotency-Key": "vendor-1"})
    assert status == 201
    status, rotated = await gw.call("POST", f"/api/v1/admin/vendors/{vendor['vendor_id']}/keys/rotate",
                                    api_key=ADMIN_KEY, json={}, headers={"Idempotency-Key": "rotate-1"})
    assert status == 201
    status, hooked = await gw.call("PUT", f"/api/v1/admin/vendors/{vendor['vendor_id']}/webhook", api_key=ADMIN_KEY,
                                   json={"url": "https://vendor.example/hook"})
    assert status == 200
    shown += [vendor["api_key"], rotated["api_key"], hooked["secret"]]

    paid = await gw.funded_permission()
    status, opened = await gw.call("POST", "/api/v1/sessions", token=paid["permission_token"],
                                   json={"user_wallet_address": paid["user_wallet_address"],
                                         "vendor_id": vendor["vendor_id"]}, headers={"Idempotency-Key": "open-1"})
    assert status == 201
    again = await gw.call("POST", "/api/v1/sessions", token=paid["permission_token"],
                          json={"user_wallet_address": paid["user_wallet_address"],
                                "vendor_id": vendor["vendor_id"]}, headers={"Idempotency-Key": "open-1"})
    assert again == (201, opened)
    shown += [paid["permission_token"], opened["session_code"]]

    completed = "SELECT count(*) FROM idempotency_keys WHERE status_code IS NOT NULL OR outcome IS NOT NULL"
    assert await gw.db.fetchval(completed) == 4  # the session's open recorded its outcome (no secret) in its call
    dump = await database_dump(database_dsn)
    assert "idempotency_keys" in dump
    assert [secret for secret in shown if leaked(dump, secret)] == []
    for prefix in ("pgp_", "pgv_", "pga_", "whsec_"):
        assert prefix not in dump and prefix.encode().hex() not in dump


async def test_anonymous_keys_must_be_unguessable(gw: Gateway) -> None:
    body = {"user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1"}
    status, answer = await gw.call("POST", "/api/v1/zcash/permissions", json=body,
                                   headers={"Idempotency-Key": "k" * 31})
    assert (status, answer["error"]["code"]) == (422, "idempotency_key_too_short")
    assert await gw.db.fetchval("SELECT count(*) FROM permissions") == 0
    status, _ = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers={"Idempotency-Key": "k" * 32})
    assert status == 201
    status, answer = await gw.call("POST", "/api/v1/sessions/end", json={"session_code": "NOPE"},
                                   headers={"Idempotency-Key": "end-1"})
    assert (status, answer["error"]["code"]) == (422, "idempotency_key_too_short")


async def test_callers_never_see_each_others_answers(gw: Gateway) -> None:
    """The same key and body from two vendors, or from the operator and a vendor, run separately."""
    first = await gw.create_vendor("first")
    second = await gw.create_vendor("second")
    path = "/api/v1/vendor/webhooks/deliveries/1/redeliver"
    key = {"Idempotency-Key": "same-key"}
    assert (await gw.call("POST", path, api_key=first["api_key"], headers=key))[0] == 404
    assert (await gw.call("POST", path, api_key=second["api_key"], headers=key))[0] == 404
    assert await gw.db.fetchval("SELECT count(DISTINCT scope) FROM idempotency_keys") == 2


async def test_a_revoked_key_gets_401_not_the_replay(signing_gw: Gateway, webhook_receiver: WebhookReceiver) -> None:
    gw = signing_gw
    status, vendor = await gw.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY, json={"name": "hooked"})
    await gw.call("PUT", f"/api/v1/admin/vendors/{vendor['vendor_id']}/webhook", api_key=ADMIN_KEY,
                  json={"url": webhook_receiver.url})
    permission = await gw.funded_permission()
    status, _ = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201
    sender = WebhookSender(allow_private=True)
    try:
        await deliver_due(gw.database, sender, signing_key=WEBHOOK_SIGNING_KEY, policy=RetryPolicy(3, 30, 90),
                          now=datetime.now(UTC), timeout_seconds=2)
    finally:
        await sender.close()
    delivery_id = await gw.db.fetchval("SELECT id FROM outbox WHERE status = 'delivered'")
    path = f"/api/v1/vendor/webhooks/deliveries/{delivery_id}/redeliver"
    key = {"Idempotency-Key": "redeliver-1"}
    status, first = await gw.call("POST", path, api_key=vendor["api_key"], headers=key)
    assert status == 200 and first["status"] == "pending"
    status, replay = await gw.call("POST", path, api_key=vendor["api_key"], headers=key)
    assert status == 200 and replay == first

    status, _ = await gw.call("POST", f"/api/v1/admin/vendors/{vendor['vendor_id']}/keys/revoke", api_key=ADMIN_KEY,
                              json={"all": True})
    assert status == 200
    response = await gw.client.post(path, headers={"X-API-Key": vendor["api_key"], **key})
    assert response.status == 401 and "Idempotent-Replayed" not in response.headers
    assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_the_same_caller_with_another_credential_is_refused_not_run_twice(gw: Gateway) -> None:
    """A vendor whose key was rotated keeps its identity; the old answer is sealed under the old key, so the same
    Idempotency-Key with the new key is a reuse (422), never a second run."""
    vendor = await gw.create_vendor()
    path = "/api/v1/vendor/webhooks/deliveries/1/redeliver"
    key = {"Idempotency-Key": "k-1"}
    assert (await gw.call("POST", path, api_key=vendor["api_key"], headers=key))[0] == 404
    _, rotated = await gw.call("POST", f"/api/v1/admin/vendors/{vendor['vendor_id']}/keys/rotate", api_key=ADMIN_KEY,
                               json={})
    status, answer = await gw.call("POST", path, api_key=rotated["api_key"], headers=key)
    assert (status, answer["error"]["code"]) == (422, "idempotency_key_reused")


async def test_records_expire_after_24_hours(gw: Gateway) -> None:
    body: dict[str, Any] = {"user_wallet_address": new_wallet(), "requested_amount": "1", "rate_per_hour": "1"}
    key = {"Idempotency-Key": long_key()}
    status, first = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers=key)
    assert status == 201
    await gw.db.execute("UPDATE idempotency_keys SET created_at = created_at - $1::interval", timedelta(hours=25))
    status, second = await gw.call("POST", "/api/v1/zcash/permissions", json=body, headers=key)
    assert status == 201 and second["permission_id"] != first["permission_id"]  # runs as new
