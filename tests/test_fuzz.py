"""Schemathesis against the gateway's own OpenAPI document: every operation gets generated requests (valid and
invalid data, with and without real credentials and real ids), sent over HTTP to a real gateway (test database,
Zcash stand-in, anvil, the Stripe stand-in); no answer may be a 5xx or break the document (an undocumented status
or content type, a body or header that does not match its schema). A third of the requests also carry one hostile
value where the document expects something ordinary: a 5,000-digit JSON number, an exponent that overflows or
underflows a Decimal, a long string, odd unicode (bidi overrides, joiners, other digit scripts, escapes, lone
surrogates), deep nesting.

Bounded for CI: a fixed number of examples per operation (at least MIN_REQUESTS in all), generated
deterministically (`derandomize`), so a run is repeatable. Schemathesis calls are blocking (requests), so they run in
a worker thread while the test's event loop serves the gateway.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import hypothesis
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_KEY, new_wallet
from tests.ethereum_fixtures import Anvil
from tests.stripe_fixtures import card_env

EXAMPLES_PER_OPERATION = 140
MIN_REQUESTS = 5000
CALL_TIMEOUT_SECONDS = 10
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@dataclass
class Known:
    """Real credentials and ids the generated requests use part of the time, to get past 401 and 404."""

    token: str
    vendor_key: str
    path_values: dict[str, list[str]]
    wallets: dict[str, str]  # by the first path segment after /api/v1 (funding source, or `sessions`)
    vendor_id: str
    session_code: str

    def credentials(self) -> list[dict[str, str]]:
        return [{}, {"Authorization": f"Bearer {self.token}"}, {"X-API-Key": self.vendor_key},
                {"X-API-Key": ADMIN_KEY}, {"Authorization": "Bearer not-a-token"}, {"X-API-Key": "not-a-key"}]


@dataclass
class Outcome:
    requests: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


# Terms a gateway accepts, and the optional fields whose good values depend on its configuration: with them, a
# generated create request can succeed (and its 201 answer be checked against the document).
GOOD_TERMS = {"requested_amount": "10", "rate_per_hour": "0.5"}
CONFIGURATION_DEPENDENT = ("asset", "notify_url", "duration_days")


def _use_known(case: Any, known: Known, pick: Callable[[list[str]], str]) -> None:
    """Swap generated path parameters, query parameters and body fields for real ones and good terms."""
    for name in list(case.path_parameters or {}):
        if name in known.path_values:
            case.path_parameters[name] = pick(known.path_values[name])
    segment = case.operation.path.split("/")[3] if case.operation.path.startswith("/api/v1/") else ""
    replacements = {"user_wallet_address": known.wallets.get(segment), "vendor_id": known.vendor_id,
                    "session_code": known.session_code, **GOOD_TERMS}
    for fields in (case.body, case.query):
        if not isinstance(fields, dict):
            continue
        for name, value in replacements.items():
            if name in fields and value is not None:
                fields[name] = value
        if "requested_amount" in fields:
            for name in CONFIGURATION_DEPENDENT:
                fields.pop(name, None)


# Raw JSON tokens no Python value serialises to (a 5,000-digit integer passes Python's own int/str limit), and
# values that are ordinary JSON but hostile to a parser: each replaces one body field, query or path value.
HUGE_DIGITS = "9" * 5000
RAW_TOKENS = [HUGE_DIGITS, "-" + HUGE_DIGITS, "1e999999999", "-1e999999999", "1e-999999999", "1E+400", "0.1e1",
              HUGE_DIGITS + ".5", '"\\ud800"', "[" * 500 + "]" * 500, '{"a":' * 300 + "1" + "}" * 300]
ODD_TEXT = ["\u202eevil", "a\u200db", "\u0661\u0662\u0663", "\uff11\uff12", "\U0001d7d8", "e\u0301", "\x1b[31mred",
            "\U0001f600" * 50, "1_000", "١٠", "  10  ", "10\n", "\ufeff10", "null", "NaN", "-0", "0x10", "1e3"]
RAW_MARKER = "__paygo_raw_json_token__"
hostile_values = st.one_of(
    st.sampled_from([("raw", token) for token in RAW_TOKENS]),
    st.sampled_from([("text", text) for text in ODD_TEXT]),
    st.builds(lambda size: ("text", "x" * size), st.sampled_from([300, 2000, 16_000])),
    st.builds(lambda text: ("text", text), st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)),
)


def _hostile_request(case: Any, kind: str, value: str, where: str) -> dict[str, Any]:
    """Put one hostile value into the case (a body field, or a query or path value), and say how to send it: a raw
    JSON token goes as bytes the JSON encoder could not have written."""
    short = value[:2000]  # a request line past 8 KiB is refused before any route (aiohttp's own 400)
    if where == "query" and case.query is not None:
        name = next(iter(case.query), "limit")
        case.query[name] = HUGE_DIGITS[:2000] if kind == "raw" else short
    elif where == "path" and case.path_parameters:
        name = next(iter(case.path_parameters))
        case.path_parameters[name] = HUGE_DIGITS[:2000] if kind == "raw" else quote(short, safe="")
    elif isinstance(case.body, dict):
        name = next(iter(case.body), "requested_amount")
        case.body[name] = RAW_MARKER if kind == "raw" else value
        if kind == "raw":
            encoded = json.dumps(case.body).replace(json.dumps(RAW_MARKER), value)
            return {"json": None, "data": encoded.encode(), "headers": {"Content-Type": "application/json"}}
    return {}


def fuzz(document: dict[str, Any], base_url: str, known: Known) -> Outcome:
    """Run every operation of the document against `base_url` (blocking: call it in a thread)."""
    schema = schemathesis.openapi.from_dict(document)
    outcome = Outcome()
    http = requests.Session()
    credentials = known.credentials()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        cases = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                          operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck),
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
        @hypothesis.given(case=cases, credential=st.sampled_from(credentials), use_known=st.booleans(),
                          hostile=st.one_of(st.none(), st.none(), hostile_values),
                          where=st.sampled_from(["body", "query", "path"]), data=st.data())
        def run(case: Any, credential: dict[str, str], use_known: bool, hostile: tuple[str, str] | None, where: str,
                data: st.DataObject) -> None:
            if use_known:
                _use_known(case, known, lambda values: data.draw(st.sampled_from(values)))
            sending = _hostile_request(case, *hostile, where) if hostile is not None else {}
            case.headers = {**(case.headers or {}), **credential, **sending.pop("headers", {})}
            try:
                response = case.call(base_url=base_url, session=http, timeout=CALL_TIMEOUT_SECONDS, **sending)
            except requests.RequestException as exc:
                outcome.failures.append(f"{label}: no answer ({exc})\n{case.as_curl_command()}")  # noqa: B023 - run() runs within its own iteration
                return
            outcome.requests += 1
            outcome.statuses.setdefault(label, set()).add(response.status_code)  # noqa: B023 - likewise
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, FailureGroup) as exc:
                outcome.failures.append(f"{label} answered {response.status_code}: {exc}\n"  # noqa: B023
                                        f"{response.text[:500]}\n{case.as_curl_command()}")

        run()
    return outcome


async def test_generated_requests_get_documented_answers(make_eth_gateway: Callable[..., Any], anvil: Anvil,
                                                         stripe_api: Any) -> None:
    eth = await make_eth_gateway(**card_env(stripe_api.url))
    gw = eth.gw
    vendor = await gw.create_vendor("fuzzed vendor")
    managed_vendor = await gw.create_vendor("vendor whose keys the fuzzer may rotate and revoke")
    permission = await gw.funded_permission()
    status, opened = await gw.open_session(permission, vendor["vendor_id"])
    assert status == 201, opened
    status, ended = await gw.end_session(opened["session_code"])  # ended: its event stream closes at once
    assert status == 200, ended
    status, card_permission = await gw.call("POST", "/api/v1/card/permissions", json={
        "user_wallet_address": "buyer@example.com", "requested_amount": "10.00", "rate_per_hour": "2.50"})
    assert status == 201, card_permission
    eth_wallet = (await anvil.new_account()).address
    known = Known(
        token=permission["permission_token"],
        vendor_key=vendor["api_key"],
        path_values={"id": [permission["permission_id"], card_permission["permission_id"]],
                     "address": [permission["user_wallet_address"], eth_wallet],
                     "session_code": [opened["session_code"]],
                     "session_id": [opened["session_id"]],
                     "vendor_id": [managed_vendor["vendor_id"]]},
        wallets={"zcash": new_wallet(), "ethereum": eth_wallet, "card": "buyer@example.com",
                 "sessions": permission["user_wallet_address"]},
        vendor_id=vendor["vendor_id"],
        session_code=opened["session_code"],
    )
    response = await gw.client.get("/api/v1/openapi.json")
    document = await response.json()

    started = time.perf_counter()
    outcome = await asyncio.to_thread(fuzz, document, str(gw.client.make_url("")).rstrip("/"), known)
    seconds = time.perf_counter() - started

    print(f"\n{outcome.requests} generated requests in {seconds:.1f} s")
    for label, statuses in sorted(outcome.statuses.items()):
        print(f"  {label}: {sorted(statuses)}")
    assert not outcome.failures, f"{len(outcome.failures)} failures:\n\n" + "\n\n".join(outcome.failures[:20])
    assert outcome.requests >= MIN_REQUESTS
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert set(outcome.statuses) == documented  # every operation was exercised


# --- answers the fuzzing showed to be 500s, each kept as a regular test ----------------------------------------

async def raw_request(gw: Any, request_line: str, headers: dict[str, bytes], body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes the HTTP clients refuse to (header values that are not UTF-8); the answer's status and body."""
    url = gw.client.make_url("")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = f"{request_line} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
                 + b"\r\n" + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_credentials_that_are_not_utf8_are_refused(gw: Any) -> None:
    not_utf8 = b"\xff\xfe"
    for headers, status in (({"Authorization": b"Bearer " + not_utf8}, 401), ({"X-API-Key": not_utf8}, 401)):
        assert (await raw_request(gw, "GET /api/v1/vendor/sessions", headers))[0] == status
        assert (await raw_request(gw, "GET /api/v1/sessions/ABC", headers))[0] == status
    status, body = await raw_request(gw, "POST /api/v1/admin/vendors",
                                     {"X-API-Key": not_utf8, "Idempotency-Key": b"k1",
                                      "Content-Type": b"application/json"}, b'{"name": "v"}')
    assert status == 403, body


async def test_a_stripe_signature_that_is_not_ascii_is_refused(card: Any) -> None:
    status, body = await card.send({"id": "evt_1", "type": "checkout.session.completed"},
                                   signature=f"t={int(time.time())},v1=\u00e9")
    assert (status, body["error"]["code"]) == (400, "invalid_signature")


async def test_strings_postgresql_cannot_store_are_refused(gw: Any) -> None:
    for name in ("nul\u0000inside", "lone \ud800 surrogate"):
        status, body = await gw.call("POST", "/api/v1/admin/vendors", api_key=ADMIN_KEY,
                                     json={"name": name}, headers={"Idempotency-Key": "k-" + str(len(name))})
        assert (status, body["error"]["code"]) == (422, "invalid_request"), body
    vendor = await gw.create_vendor()
    for query in ("wallet=%00", "status=%00", "cursor=%00", "from=%00"):
        status, body = await gw.call("GET", f"/api/v1/vendor/sessions?{query}", api_key=vendor["api_key"])
        assert status == 422, (query, body)
    status, body = await gw.call("GET", "/api/v1/sessions/%00", token="pgp_unknown")
    assert status == 422, body
    status, body = await gw.call("POST", "/api/v1/sessions/end", json={"session_code": "\u0000"})
    assert status in (404, 422), body
