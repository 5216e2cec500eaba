"""What the pages and their JSON endpoints share: the template environment, the static files, the pages' security
headers, and the paths of a permission's checkout page and QR code.

Libraries: Jinja2 through aiohttp-jinja2 renders the pages (autoescaped); segno draws QR codes as SVG; the browser
side uses uPlot for charts and Swagger UI for the API docs, both committed under gateway/static/vendor/ with their
licences (see the README there), so every page works offline and nothing comes from a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar
from uuid import UUID

import aiohttp_jinja2
import jinja2
from aiohttp import web

ResponseT = TypeVar("ResponseT", bound=web.StreamResponse)

STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static"


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("gateway", "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined)


def static_route() -> web.AbstractRouteDef:
    """The pages' CSS, JavaScript and vendored libraries, served by aiohttp's static handler (which refuses paths
    outside the folder)."""
    return web.static(STATIC_PREFIX, STATIC_DIR)


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


def checkout_url(request: web.Request, permission_id: UUID | str) -> str:
    """The checkout page as an absolute URL on the host the request reached (an app redirects its payer there).
    Built from the scheme and Host rather than `request.url`, whose parsing cost 3 % of a permission read."""
    return f"{request.scheme}://{request.host}{checkout_path(permission_id)}"
