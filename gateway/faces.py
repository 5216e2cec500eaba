"""What the pages and their JSON endpoints share: the services they call (built once the runtime is open), the
template environment, the static files, and the links every permission answer carries (`checkout_url`,
`payment_uri`).

Libraries: Jinja2 through aiohttp-jinja2 renders the pages (autoescaped); segno draws QR codes as SVG; the browser
side uses uPlot for charts and Swagger UI for the API docs, both committed under gateway/static/vendor/ with their
licences (see the README there), so every page works offline and nothing comes from a CDN.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import aiohttp_jinja2
import jinja2
from aiohttp import web

from billing.checkout import CheckoutService
from billing.dashboards import OperatorDashboard, VendorAccount, WalletDashboard
from billing.service import PermissionState
from gateway.keys import BILLING, POOL, SETTINGS
from paygo.settings import OperationsSettings

ResponseT = TypeVar("ResponseT", bound=web.StreamResponse)

STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static"

CHECKOUT = web.AppKey("checkout", CheckoutService)
WALLET = web.AppKey("wallet_dashboard", WalletDashboard)
VENDOR_ACCOUNT = web.AppKey("vendor_account", VendorAccount)
OPERATOR = web.AppKey("operator_dashboard", OperatorDashboard)


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("gateway", "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined)


def static_route() -> web.AbstractRouteDef:
    """The pages' CSS, JavaScript and vendored libraries, served by aiohttp's static handler (which refuses paths
    outside the folder)."""
    return web.static(STATIC_PREFIX, STATIC_DIR)


async def services(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx entry, after the runtime's: the pages' services over the runtime's pool and billing."""
    settings = app[SETTINGS]
    billing = app[BILLING]
    pool = app[POOL]
    overlap = (settings.operations or OperationsSettings()).vendor_key_rotation_overlap_seconds
    app[CHECKOUT] = CheckoutService(pool, billing.assets, billing.min_confirmations,
                                    settings.ethereum.chain_id if settings.ethereum else None)
    app[WALLET] = WalletDashboard(pool)
    app[VENDOR_ACCOUNT] = VendorAccount(pool, overlap)
    app[OPERATOR] = OperatorDashboard(pool)
    yield


def page_headers(response: ResponseT, *, inline_styles: bool = False) -> ResponseT:
    """Headers of every page: a Content-Security-Policy that allows only this gateway's own scripts, styles, images
    and requests (so no page can load from a CDN, and injected markup cannot run script), no framing, and no
    Referer (a checkout page's URL names its permission)."""
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data:; style-src {styles}; script-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def checkout_path(permission_id: UUID | str) -> str:
    return f"/pay/{permission_id}"


def qr_path(permission_id: UUID | str, amount: str | None = None) -> str:
    """The QR code (SVG) of the permission's payment URI for `amount` (an exact decimal string), or for any amount."""
    return f"/pay/{permission_id}/qr.svg" + (f"?amount={amount}" if amount is not None else "")


def checkout_links(request: web.Request, state: PermissionState) -> dict[str, Any]:
    """`checkout_url` (the gateway's checkout page, absolute) and `payment_uri` (ZIP-321 / EIP-681, for what is
    still missing, or for a top-up once funded) of a permission answer."""
    payment = request.app[CHECKOUT].payment_request(state.permission, state.payments, state.now)
    return {"checkout_url": f"{request.url.origin()}{checkout_path(state.permission.id)}",
            "payment_uri": payment.uri if payment is not None else None}
