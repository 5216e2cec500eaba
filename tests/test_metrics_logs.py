"""Operations: /metrics after real requests (route templates, never a session code), scheduler counters, JSON access
logs with the request id and no secret, health that reports the schema, scheduler and outbox, readiness refused
while migrations are missing, and `paygo report`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from paygo.logs import JsonFormatter, log_handler
from paygo.metrics import Metrics
from tests.conftest import ADMIN_KEY, Gateway
from tests.test_vendor_api import run_cli


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Everything the `paygo` loggers write while the test runs, formatted by our JSON handler."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    logger = logging.getLogger("paygo")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous_level)


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples]


async def test_metrics_name_routes_by_template_and_read_gauges_at_scrape_time(gw: Gateway) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    status, _ = await gw.call("GET", f"/api/v1/sessions/{opened['session_code']}", token=permission["permission_token"])
    assert status == 200
    await gw.call("GET", "/no/such/page")
    response = await gw.client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    assert opened["session_code"] not in text and permission["permission_token"] not in text
    found = samples(text)
    requests = {(labels["method"], labels["route"], labels["status"]): value for name, labels, value in found
                if name == "paygo_http_request_duration_seconds_count"}
    assert requests[("GET", "/api/v1/sessions/{session_code}", "200")] == 1
    assert requests[("POST", "/api/v1/sessions", "201")] == 1
    assert requests[("GET", "unmatched", "404")] == 1
    values = {(name, tuple(sorted(labels.items()))): value for name, labels, value in found}
    assert values[("paygo_active_sessions", ())] == 1
    assert values[("paygo_database_up", ())] == 1
    assert values[("paygo_pending_payments", ())] == 0
    height = await gw.chain_rpc.call("getblockcount")
    assert values[("paygo_node_tip_height", (("source", "zcash"),))] == height
    assert values[("paygo_node_reachable", (("source", "zcash"),))] == 1

    await gw.db.execute(
        "INSERT INTO outbox (kind, event_type, dedupe_key, target_url, payload) "
        "VALUES ('webhook', 'session.started', 'test-1', 'http://127.0.0.1:9/hook', '{}')")
    values = {(name, tuple(sorted(labels.items()))): value
              for name, labels, value in samples(await (await gw.client.get(
                  "/metrics", headers={"X-API-Key": ADMIN_KEY})).text())}
    assert values[("paygo_outbox_messages", (("kind", "webhook"), ("status", "pending")))] == 1


def test_scheduler_tick_counters() -> None:
    metrics = Metrics()
    with metrics.time_tick("billing"):
        pass
    with pytest.raises(RuntimeError), metrics.time_tick("billing"):
        raise RuntimeError("node down")
    registry = metrics.registry
    assert registry.get_sample_value("paygo_scheduler_ticks_total", {"job": "billing", "outcome": "ok"}) == 1
    assert registry.get_sample_value("paygo_scheduler_ticks_total", {"job": "billing", "outcome": "error"}) == 1
    assert registry.get_sample_value("paygo_scheduler_tick_duration_seconds_count", {"job": "billing"}) == 2
    assert Metrics().registry.get_sample_value("paygo_scheduler_ticks_total",
                                               {"job": "billing", "outcome": "ok"}) is None  # one registry each


async def test_access_log_is_json_with_the_request_id_and_no_secret(gw: Gateway, json_logs: io.StringIO) -> None:
    vendor = await gw.create_vendor()
    permission = await gw.funded_permission("10", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    path = f"/api/v1/sessions/{opened['session_code']}"
    status, _ = await gw.call("GET", path, token=permission["permission_token"], headers={"X-Request-ID": "trace-42"})
    assert status == 200
    await gw.call("GET", "/api/v1/vendor/sessions", api_key=vendor["api_key"], headers={"X-Request-ID": "trace-43"})
    text = json_logs.getvalue()
    for secret in (opened["session_code"], permission["permission_token"], vendor["api_key"]):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    [access] = [line for line in lines if line["request_id"] == "trace-42" and line["logger"] == "paygo.access"]
    assert access["method"] == "GET" and access["route"] == "/api/v1/sessions/{session_code}"
    assert access["status"] == 200 and isinstance(access["duration_ms"], float) and access["level"] == "INFO"
    assert access["time"].endswith("Z") and access["message"].startswith("GET /api/v1/sessions/{session_code} 200")
    assert any(line["request_id"] == "trace-43" and line["route"] == "/api/v1/vendor/sessions" for line in lines)


def test_formatter_masks_anything_shaped_like_a_key() -> None:
    record = logging.LogRecord("paygo", logging.WARNING, __file__, 1, "got %s", ("pgv_abcdefghijklmnop",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "got pgv_[redacted]" and line["level"] == "WARNING"


async def test_health_reports_schema_scheduler_and_webhooks(gw: Gateway) -> None:
    status, body = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert status == 200
    checks = body["checks"]
    assert checks["database"]["ok"] and checks["migrations"] == {**checks["migrations"], "ok": True, "pending": []}
    assert checks["zcash"]["reachable"] is True and checks["redis"]["ok"]
    assert checks["scheduler"]["ok"] is False and checks["scheduler"]["lag_seconds"] is None  # no job ran yet
    assert body["status"] == "degraded"
    assert checks["webhooks"] == {"ok": True, "pending": 0, "dead": 0, "oldest_pending_age_seconds": None}

    await gw.db.execute("INSERT INTO job_runs (job_name, last_started_at, last_succeeded_at, runs) "
                        "VALUES ('billing_tick', now(), now(), 1)")
    await gw.db.execute(
        "INSERT INTO outbox (kind, event_type, dedupe_key, target_url, payload, status, created_at) VALUES "
        "('webhook', 'session.ended', 'old', 'http://127.0.0.1:9/', '{}', 'pending', now() - interval '2 hours'),"
        "('webhook', 'session.ended', 'gone', 'http://127.0.0.1:9/', '{}', 'dead', now())")
    _, body = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert body["checks"]["scheduler"]["ok"] is True and body["checks"]["scheduler"]["lag_seconds"] <= 1
    webhooks = body["checks"]["webhooks"]
    assert webhooks["ok"] is False and webhooks["pending"] == 1 and webhooks["dead"] == 1
    assert webhooks["oldest_pending_age_seconds"] >= 7200


async def test_ready_fails_while_migrations_are_missing(gw: Gateway) -> None:
    assert (await gw.call("GET", "/api/v1/health/ready"))[0] == 200
    await gw.db.execute("DELETE FROM schema_migrations WHERE name = '0005_operator_views.sql'")
    status, body = await gw.call("GET", "/api/v1/health/ready")
    assert status == 503 and body["error"]["code"] == "migrations_pending"
    assert "0005_operator_views.sql" in body["error"]["message"]
    _, health = await gw.call("GET", "/api/v1/health", api_key=ADMIN_KEY)
    assert health["checks"]["migrations"]["pending"] == ["0005_operator_views.sql"]


async def test_report_prints_the_operator_views(gw: Gateway, database_dsn: str) -> None:
    vendor = await gw.create_vendor("Night Owl Radio")
    permission = await gw.funded_permission("10", "2.5")
    _, opened = await gw.open_session(permission, vendor["vendor_id"])
    await gw.backdate_session(opened["session_id"], 1800)
    await gw.end_session(opened["session_code"])
    code, out, err = await run_cli(database_dsn, "report")
    assert code == 0, err
    for view in ("permission_statistics", "active_permissions_with_sessions", "vendor_revenue_daily",
                 "scheduler_health", "webhook_backlog", "permission_audit_log"):
        assert f"== {view} ==" in out
    revenue = out.split("== vendor_revenue_daily ==\n")[1].split("\n\n")[0].splitlines()
    header, rule, row = revenue
    assert header.split() == ["vendor_id", "vendor_name", "day", "asset", "charges", "sessions", "revenue_units",
                              "revenue"]
    assert "Night Owl Radio" in row and row.endswith("125000000  1.25000000")
    assert len(header) <= len(rule)  # aligned under a rule as wide as the columns
    code, out, _ = await run_cli(database_dsn, "report", "--view", "vendor_revenue_daily", "--limit", "1")
    assert code == 0 and out.count("==") == 2
