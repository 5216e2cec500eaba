"""The vendor API: a vendor sees only its own sessions (lists, by id, summaries, CSV), pages walk every session once,
filters and CSV are exact, and vendor keys rotate with an overlap and are revoked at once (API and CLI)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from datetime import datetime, timedelta

from tests.conftest import ADMIN_KEY, Gateway

SESSIONS = "/api/v1/vendor/sessions"
SUMMARY = "/api/v1/vendor/charges/summary"


async def ended_session(gw: Gateway, permission: dict, vendor: dict, seconds: int) -> dict:
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201, opened
    await gw.backdate_session(opened["session_id"], seconds)
    status, ended = await gw.end_session(opened["session_code"])
    assert status == 200, ended
    return opened


async def test_a_vendor_sees_only_its_own_sessions(gw: Gateway) -> None:
    alice, bob = await gw.create_vendor("alice"), await gw.create_vendor("bob")
    permission = await gw.funded_permission("10", "2.5")
    alices = await ended_session(gw, permission, alice, 1800)  # 1.25 ZEC
    bobs = await ended_session(gw, permission, bob, 3600)  # 2.5 ZEC

    status, page = await gw.call("GET", SESSIONS, api_key=alice["api_key"])
    assert status == 200 and [s["session_id"] for s in page["sessions"]] == [alices["session_id"]]
    status, page = await gw.call("GET", SESSIONS, api_key=bob["api_key"])
    assert [s["session_id"] for s in page["sessions"]] == [bobs["session_id"]]

    status, body = await gw.call("GET", f"{SESSIONS}/{bobs['session_id']}", api_key=alice["api_key"])
    assert status == 404 and body["error"]["code"] == "session_not_found"
    status, body = await gw.call("GET", f"{SESSIONS}/{alices['session_id']}", api_key=alice["api_key"])
    assert status == 200 and body["charged_amount"] == "1.25000000"

    _, summary = await gw.call("GET", SUMMARY, api_key=alice["api_key"])
    assert summary["rows"] == [{"day": None, "asset": "ZEC", "charges": 1, "sessions": 1, "amount": "1.25000000"}]
    _, exported = await gw.call("GET", f"{SESSIONS}?format=csv", api_key=alice["api_key"])
    assert [row["session_id"] for row in csv.DictReader(io.StringIO(exported))] == [alices["session_id"]]
    _, exported = await gw.call("GET", f"{SUMMARY}?format=csv", api_key=bob["api_key"])
    assert list(csv.DictReader(io.StringIO(exported))) == [
        {"asset": "ZEC", "charges": "1", "sessions": "1", "amount": "2.50000000"}]

    for path in (SESSIONS, f"{SESSIONS}/{alices['session_id']}", SUMMARY):
        assert (await gw.call("GET", path))[0] == 401
        assert (await gw.call("GET", path, api_key="pgv_not-a-key"))[0] == 401
        assert (await gw.call("GET", path, api_key=ADMIN_KEY))[0] == 401  # the operator key is not a vendor key
    assert (await gw.call("GET", f"{SESSIONS}/not-a-uuid", api_key=alice["api_key"]))[0] == 404


async def test_session_detail_lists_every_charge_line(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("1", "1")
    opened = await ended_session(gw, permission, vendor, 7200)  # owes 2 ZEC, has 1
    status, detail = await gw.call("GET", f"{SESSIONS}/{opened['session_id']}", api_key=vendor["api_key"])
    assert status == 200
    assert detail["status"] == "exhausted" and detail["duration_seconds"] == 7200
    assert detail["charged_amount"] == "1.00000000" and detail["uncovered_amount"] == "1.00000000"
    assert detail["rate_per_hour"] == "1.00000000"
    assert detail["user_wallet_address"] == permission["user_wallet_address"]
    ledger = await gw.db.fetch("SELECT id, amount FROM ledger_entries WHERE session_id = $1 ORDER BY id",
                               opened["session_id"])
    assert [(line["id"], line["kind"], line["amount"]) for line in detail["charges"]] == [
        (entry["id"], "charge", "-1.00000000") for entry in ledger]
    assert len(detail["charges"]) == 1


async def test_pages_walk_every_session_once_newest_first(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "0.1")
    opened = []
    for age in (500, 400, 300, 200, 100):
        status, session = await gw.open_session(permission, vendor["vendor_id"])
        await gw.backdate_session(session["session_id"], age)
        opened.append(session["session_id"])
    # Two sessions starting at the same instant: the id breaks the tie, neither is skipped nor repeated.
    await gw.db.execute("UPDATE sessions SET started_at = (SELECT started_at FROM sessions WHERE id = $1) "
                        "WHERE id = $2", opened[1], opened[2])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = f"{SESSIONS}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await gw.call("GET", query, api_key=vendor["api_key"])
        assert status == 200, page
        seen += [s["session_id"] for s in page["sessions"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(opened) and len(seen) == 5
    starts = await gw.db.fetch("SELECT id::text, started_at FROM sessions WHERE id = ANY($1::uuid[])", opened)
    started = {row["id"]: row["started_at"] for row in starts}
    assert [started[s] for s in seen] == sorted(started.values(), reverse=True)


async def test_filters_and_their_errors(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    first, second = await gw.funded_permission("10", "1"), await gw.funded_permission("10", "1")
    ended = await ended_session(gw, first, vendor, 3600)
    _, active = await gw.open_session(second, vendor["vendor_id"])
    key = vendor["api_key"]

    async def ids(query: str) -> list[str]:
        status, page = await gw.call("GET", f"{SESSIONS}?{query}", api_key=key)
        assert status == 200, page
        return [s["session_id"] for s in page["sessions"]]

    assert await ids("status=active") == [active["session_id"]]
    assert await ids("status=ended") == [ended["session_id"]]
    assert sorted(await ids("status=ended,active")) == sorted([ended["session_id"], active["session_id"]])
    assert await ids(f"wallet={first['user_wallet_address']}") == [ended["session_id"]]
    now = await gw.db.fetchval("SELECT now()")
    cut = (now - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert await ids(f"to={cut}") == [ended["session_id"]]  # started an hour ago
    assert await ids(f"from={cut}") == [active["session_id"]]
    assert await ids("from=2000-01-01&to=2000-01-02") == []

    for query, code in [
        ("status=paused", "invalid_status"),
        ("from=yesterday", "invalid_from"),
        ("to=2024-13-01", "invalid_to"),
        ("from=2024-02-01&to=2024-01-01", "invalid_range"),
        ("limit=0", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("cursor=bm90IGEgY3Vyc29y", "invalid_cursor"),
        ("format=xml", "invalid_format"),
        ("sort=asc", "unknown_parameter"),
        ("status=active&status=ended", "invalid_status"),
    ]:
        status, body = await gw.call("GET", f"{SESSIONS}?{query}", api_key=key)
        assert (status, body["error"]["code"]) == (422, code), query
    status, body = await gw.call("GET", f"{SUMMARY}?group_by=week", api_key=key)
    assert (status, body["error"]["code"]) == (422, "invalid_group_by")


async def test_csv_export_is_exact_and_complete(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "0.00000007")  # 7 zatoshi per hour
    for seconds in (3600, 1800, 5400):
        await ended_session(gw, permission, vendor, seconds)
    response = await gw.client.get(SESSIONS, headers={"X-API-Key": vendor["api_key"], "Accept": "text/csv"})
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    _, page = await gw.call("GET", SESSIONS, api_key=vendor["api_key"])
    assert rows == [{key: "" if value is None else str(value) for key, value in s.items()} for s in page["sessions"]]
    assert sorted(row["charged_amount"] for row in rows) == ["0.00000003", "0.00000007", "0.00000010"]
    assert {row["rate_per_hour"] for row in rows} == {"0.00000007"}


async def test_summary_by_day_and_by_asset(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    await ended_session(gw, permission, vendor, 1800)
    await ended_session(gw, permission, vendor, 3600)
    today = (await gw.db.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")).isoformat()
    status, by_day = await gw.call("GET", f"{SUMMARY}?group_by=day", api_key=vendor["api_key"])
    assert status == 200 and by_day == {"group_by": "day", "rows": [
        {"day": today, "asset": "ZEC", "charges": 2, "sessions": 2, "amount": "3.75000000"}]}
    _, by_asset = await gw.call("GET", f"{SUMMARY}?group_by=asset&from={today}", api_key=vendor["api_key"])
    assert by_asset["rows"] == [{"day": None, "asset": "ZEC", "charges": 2, "sessions": 2, "amount": "3.75000000"}]
    _, later = await gw.call("GET", f"{SUMMARY}?from=2999-01-01", api_key=vendor["api_key"])
    assert later["rows"] == []
    _, exported = await gw.call("GET", f"{SUMMARY}?group_by=day&format=csv", api_key=vendor["api_key"])
    assert list(csv.DictReader(io.StringIO(exported))) == [
        {"day": today, "asset": "ZEC", "charges": "2", "sessions": "2", "amount": "3.75000000"}]


async def test_key_rotation_keeps_the_old_key_for_the_overlap_and_revocation_is_immediate(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    vendor_id, first = vendor["vendor_id"], vendor["api_key"]
    rotate, revoke = f"/api/v1/admin/vendors/{vendor_id}/keys/rotate", f"/api/v1/admin/vendors/{vendor_id}/keys/revoke"

    async def works(key: str) -> bool:
        status, _ = await gw.call("GET", SESSIONS, api_key=key)
        assert status in (200, 401)
        return status == 200

    status, rotated = await gw.call("POST", rotate, api_key=ADMIN_KEY, json={})  # default overlap: one day
    assert status == 201 and rotated["api_key"].startswith(rotated["key_prefix"])
    second = rotated["api_key"]
    assert await works(first) and await works(second)
    remaining = await gw.db.fetchval("SELECT extract(epoch FROM $1::timestamptz - now())::int",
                                     datetime.fromisoformat(rotated["previous_keys_expire_at"]))
    assert 86000 < remaining <= 86400
    # The overlap ends: the database clock passes the old key's expiry.
    await gw.db.execute("UPDATE vendor_api_keys SET expires_at = now() - interval '1 second' "
                        "WHERE vendor_id = $1 AND expires_at IS NOT NULL", vendor_id)
    assert not await works(first) and await works(second)

    status, rotated = await gw.call("POST", rotate, api_key=ADMIN_KEY, json={"overlap_seconds": 0})
    third = rotated["api_key"]
    assert not await works(second) and await works(third)

    status, fourth_body = await gw.call("POST", rotate, api_key=ADMIN_KEY, json={"overlap_seconds": 600})
    fourth = fourth_body["api_key"]
    status, body = await gw.call("POST", revoke, api_key=ADMIN_KEY, json={"key_prefix": fourth_body["key_prefix"]})
    assert status == 200 and body["revoked"] == 1
    assert await works(third) and not await works(fourth)
    status, body = await gw.call("POST", revoke, api_key=ADMIN_KEY, json={"all": True})
    assert body["revoked"] == 1 and not await works(third)

    status, listed = await gw.call("GET", f"/api/v1/admin/vendors/{vendor_id}/keys", api_key=ADMIN_KEY)
    assert status == 200 and len(listed["keys"]) == 4 and not any(k["live"] for k in listed["keys"])
    assert all(k["key_prefix"] not in (first, second, third, fourth) for k in listed["keys"])

    for body, code in [({}, "invalid_revocation"), ({"all": True, "key_prefix": "pgv_x"}, "invalid_revocation"),
                       ({"key_prefix": "pgv_none"}, "key_not_found")]:
        status, answer = await gw.call("POST", revoke, api_key=ADMIN_KEY, json=body)
        assert answer["error"]["code"] == code
    status, answer = await gw.call("POST", rotate, api_key=ADMIN_KEY, json={"overlap_seconds": -1})
    assert (status, answer["error"]["code"]) == (422, "invalid_overlap")
    unknown = "/api/v1/admin/vendors/00000000-0000-0000-0000-000000000000/keys/rotate"
    assert (await gw.call("POST", unknown, api_key=ADMIN_KEY, json={}))[0] == 404
    assert (await gw.call("POST", rotate, api_key=third, json={}))[0] == 403


async def run_cli(database_dsn: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_dsn, "LOG_FORMAT": "text"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "paygo.cli", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_rotates_and_revokes_keys(gw: Gateway, database_dsn: str) -> None:
    vendor = await gw.create_vendor()
    code, out, err = await run_cli(database_dsn, "vendor", "rotate-key", vendor["vendor_id"], "--overlap-seconds", "60")
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines() if line.startswith(("api_key", "key_prefix")))
    new_key, prefix = fields["api_key"].strip(), fields["key_prefix"].strip()
    assert (await gw.call("GET", SESSIONS, api_key=vendor["api_key"]))[0] == 200  # within the overlap
    assert (await gw.call("GET", SESSIONS, api_key=new_key))[0] == 200
    code, out, err = await run_cli(database_dsn, "vendor", "revoke-key", vendor["vendor_id"], "--prefix", prefix)
    assert code == 0 and "revoked 1" in out, err
    assert (await gw.call("GET", SESSIONS, api_key=new_key))[0] == 401
    code, out, err = await run_cli(database_dsn, "vendor", "revoke-key", vendor["vendor_id"], "--all")
    assert code == 0 and "revoked 1" in out
    assert (await gw.call("GET", SESSIONS, api_key=vendor["api_key"]))[0] == 401
    code, out, err = await run_cli(database_dsn, "vendor", "keys", vendor["vendor_id"])
    assert code == 0 and prefix in out and new_key not in out
