"""Logs and surfaces (issue 10, findings 8 and 9): no secret in any log line, aiohttp's included; detailed health and
/metrics only for the operator key or METRICS_TOKEN while /health/live and /health/ready stay public and minimal."""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from paygo.logs import AiohttpRedactionFilter, log_handler, redact_foreign
from regtest.zcash_node import RunningNode
from tests.conftest import ADMIN_KEY, Gateway


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """What the root logger writes (ours and aiohttp's) through our JSON handler, at every level."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def send_raw(gw: Gateway, data: bytes) -> bytes:
    url = gw.client.make_url("")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return answer


@pytest.mark.parametrize("bad_line", [b"X-API-Key: {key}\x01", b"Authorization: Bearer {key}\x00x",
                                      b"X-API-Key {key}"])
async def test_a_malformed_header_line_is_logged_without_its_credential(gw: Gateway, every_log_line: io.StringIO,
                                                                       bad_line: bytes) -> None:
    request = (b"GET /api/v1/vendor/sessions HTTP/1.1\r\nHost: x\r\n" + bad_line.replace(b"{key}", ADMIN_KEY.encode())
               + b"\r\nConnection: close\r\n\r\n")
    answer = await send_raw(gw, request)
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    logged = every_log_line.getvalue()
    assert ADMIN_KEY not in logged and ADMIN_KEY[6:] not in logged
    assert '"level": "ERROR"' not in logged


async def test_a_session_code_in_a_malformed_request_is_not_logged(gw: Gateway,
                                                                   every_log_line: io.StringIO) -> None:
    code = "SESSIONCODE" + secrets.token_hex(6).upper()
    await send_raw(gw, f"GET /api/v1/sessions/{code} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".encode())
    assert code not in every_log_line.getvalue()


def test_aiohttp_records_are_redacted_and_their_exceptions_summarised() -> None:
    record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, '%s "GET /api/v1/sessions/%s HTTP/1.1" 200',
                               ("127.0.0.1", "ABCDEFGH23456789"), None)
    assert AiohttpRedactionFilter().filter(record)
    assert record.getMessage() == '127.0.0.1 "GET /api/v1/sessions/[redacted] HTTP/1.1" 200'
    assert redact_foreign("Cookie: a=b\x1b[31m") == "Cookie: [redacted]"
    assert redact_foreign("POST /api/v1/sessions/end") == "POST /api/v1/sessions/end"


async def test_detailed_health_and_metrics_need_the_operator_key_or_the_metrics_token(
        make_gateway: Callable[..., Any], zcash_regtest: tuple[RunningNode, str]) -> None:
    node, password = zcash_regtest
    metrics_token = secrets.token_urlsafe(32)
    gw = await make_gateway(node, password, METRICS_TOKEN=metrics_token)
    vendor = await gw.create_vendor()
    for path in ("/api/v1/health", "/metrics"):
        anonymous = await gw.client.get(path)
        assert anonymous.status == 401 and (await anonymous.json())["error"]["code"] == "missing_api_key"
        text = await anonymous.text()
        assert "127.0.0.1" not in text and "zcash" not in text
        for wrong in ({"X-API-Key": vendor["api_key"]}, {"Authorization": "Bearer not-the-token"}):
            assert (await gw.client.get(path, headers=wrong)).status == 403
        assert (await gw.client.get(path, headers={"X-API-Key": ADMIN_KEY})).status == 200
        assert (await gw.client.get(path, headers={"Authorization": f"Bearer {metrics_token}"})).status == 200
    for path in ("/api/v1/health/live", "/api/v1/health/ready"):
        public = await gw.client.get(path)
        assert public.status == 200 and set(await public.json()) == {"status"}
