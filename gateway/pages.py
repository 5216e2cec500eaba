"""Pages for people: the checkout page a payer scans, the wallet view, the vendor and operator dashboards.

Server-rendered (Jinja2) with a little same-origin JavaScript each (gateway/static/*.js) that reads the JSON API:
no inline script or event handler, no CDN, readable on a phone. Secrets never go in a URL: the wallet, vendor and
operator pages ask for the token or key in a form and keep it in the tab's sessionStorage, sending it in a header.
`?refresh=SECONDS` (0.2 to 300) sets how often a page re-reads its data; tests make it fast.

Money on the pages is the API's exact decimal strings; the JavaScript never computes with amounts.
"""

from __future__ import annotations

import io
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp_jinja2
import segno
from aiohttp import web

from gateway.auth import parse_uuid
from gateway.dashboard_api import checkout_view
from gateway.faces import page_headers
from gateway.keys import SERVICES
from gateway.openapi import page
from kernel.errors import NotFound

MIN_REFRESH_SECONDS = Decimal("0.2")
MAX_REFRESH_SECONDS = Decimal(300)
CHECKOUT_REFRESH_SECONDS = Decimal(3)
DASHBOARD_REFRESH_SECONDS = Decimal(10)
QR_CACHE_SECONDS = 300


def _refresh_ms(request: web.Request, default: Decimal) -> int:
    """`?refresh=SECONDS` within bounds, else the page's default, in milliseconds."""
    try:
        seconds = Decimal(request.query.get("refresh", ""))
    except InvalidOperation:
        seconds = default
    if not seconds.is_finite() or not MIN_REFRESH_SECONDS <= seconds <= MAX_REFRESH_SECONDS:
        seconds = default
    return int(seconds * 1000)


def _render(template: str, request: web.Request, context: dict[str, Any], *, status: int = 200) -> web.Response:
    return page_headers(aiohttp_jinja2.render_template(template, request, context, status=status))


@page
async def index(request: web.Request) -> web.Response:
    return _render("index.html", request, {})


@page
async def checkout_page(request: web.Request) -> web.Response:
    """`/pay/{permission_id}`: amount, where to pay, the payment URI and its QR code, and the live status."""
    try:
        permission_id = parse_uuid(request.match_info["permission_id"], "permission")
        state = await request.app[SERVICES].checkout.state(permission_id)
    except NotFound:
        return _render("not_found.html", request, {"what": "payment request"}, status=404)
    return _render("checkout.html", request, {
        "view": checkout_view(state), "refresh_ms": _refresh_ms(request, CHECKOUT_REFRESH_SECONDS)})


@page
async def payment_qr(request: web.Request) -> web.Response:
    """The QR code (SVG) of the permission's payment URI: for `?amount=` (an exact decimal of its asset), or for
    any amount without it. 404 for card permissions, which pay on Stripe's page."""
    permission_id = parse_uuid(request.match_info["permission_id"], "permission")
    uri = await request.app[SERVICES].checkout.qr_uri(permission_id, request.query.get("amount"))
    svg = io.BytesIO()
    segno.make(uri, micro=False).save(svg, kind="svg", border=4, omitsize=True, xmldecl=False,
                                      title="Payment request")
    return web.Response(body=svg.getvalue(), content_type="image/svg+xml", headers={
        "Cache-Control": f"public, max-age={QR_CACHE_SECONDS}", "Content-Security-Policy": "default-src 'none'",
        "X-Content-Type-Options": "nosniff"})


def _dashboard(template: str) -> Any:
    @page
    async def handler(request: web.Request) -> web.Response:
        return _render(template, request, {"refresh_ms": _refresh_ms(request, DASHBOARD_REFRESH_SECONDS)})

    return handler


routes = [
    web.get("/", index),
    web.get("/pay/{permission_id}", checkout_page),
    web.get("/pay/{permission_id}/qr.svg", payment_qr),
    web.get("/wallet", _dashboard("wallet.html")),
    web.get("/vendor", _dashboard("vendor.html")),
    web.get("/operator", _dashboard("operator.html")),
]
