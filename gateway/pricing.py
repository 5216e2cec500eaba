"""Quotes for fiat-priced permissions: `POST /api/v1/quotes` locks a rate from the configured provider for the
window (RATE_LOCK_SECONDS). A Zcash permission asked for in USD gets one by itself; an Ethereum wallet names one in
the typed data it signs and in the create, since it signs the converted amounts."""

from __future__ import annotations

from aiohttp import web

from gateway.http import json_response, read_body
from gateway.keys import SERVICES
from gateway.models import CreateQuoteRequest, QuoteView
from gateway.openapi import Operation, describe
from gateway.views import quote_view


@describe(Operation(
    summary="Lock a rate of an asset in a fiat currency (for a fiat-priced permission)", tag="pricing",
    body=CreateQuoteRequest, status=201, response=QuoteView, errors=(422, 503),
    description="The rate comes from the configured provider, with its source and time, and holds until "
                "`locked_until`. No rate, or one older than RATE_MAX_AGE_SECONDS, answers 503 `rate_unavailable` "
                "with Retry-After: never a guess."))
async def create_quote(request: web.Request) -> web.Response:
    body = await read_body(request, CreateQuoteRequest)
    quote = await request.app[SERVICES].pricing.quote_for(body.asset, body.pricing_currency)
    return json_response(quote_view(quote), status=201)


routes = [web.post("/api/v1/quotes", create_quote)]
