"""Vendor webhook routes: the operator sets a vendor's receiver URL (and gets its signing secret), the vendor reads
its own delivery log and asks for a redelivery; the operator may redeliver any message.

The vendor side answers only the vendor's own messages: another vendor's delivery answers 404, as if it did not
exist. Events, payloads and signatures: billing/vendor_webhooks.py and billing/webhooks.py.
"""

from __future__ import annotations

from aiohttp import web

from billing.vendor_webhooks import DELIVERY_STATUSES, VENDOR_EVENTS, Delivery
from billing.webhooks import SIGNATURE_HEADER
from gateway.auth import parse_uuid, require_operator, require_vendor
from gateway.http import bounded_int, json_response, read_body
from gateway.keys import SERVICES
from gateway.openapi import Auth, Operation, Parameter, describe
from gateway.vendor import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, check_parameters, page_limit
from gateway.views import iso
from gateway.webhook_models import (
    DeliveryAttemptView,
    DeliveryPage,
    DeliveryView,
    SetWebhookRequest,
    WebhookSettingView,
)
from kernel.errors import InvalidRequest, NotFound

DELIVERY_PARAMETERS = frozenset({"status", "event_type", "limit", "cursor"})
MAX_DELIVERY_ID = 2**63 - 1  # bigserial


def _delivery_id(request: web.Request) -> int:
    delivery_id = bounded_int(request.match_info["delivery_id"], MAX_DELIVERY_ID)
    if not delivery_id:
        raise NotFound("no webhook delivery with this id", code="delivery_not_found")
    return delivery_id


def _delivery_view(delivery: Delivery) -> DeliveryView:
    return DeliveryView(
        id=str(delivery.id), event_id=delivery.event_id, event_type=delivery.event_type, status=delivery.status,
        attempts=delivery.attempts, redeliveries=delivery.redeliveries, target_url=delivery.target_url,
        created_at=iso(delivery.created_at), next_attempt_at=iso(delivery.next_attempt_at),
        delivered_at=iso(delivery.delivered_at), last_status_code=delivery.last_status_code,
        last_error=delivery.last_error, payload=delivery.payload,
        log=[DeliveryAttemptView(attempt=a.attempt, outcome=a.outcome, status_code=a.status_code, error=a.error,
                                 duration_ms=a.duration_ms, attempted_at=iso(a.attempted_at)) for a in delivery.log],
    )


@describe(Operation(
    summary="Set or remove a vendor's webhook URL; answers the vendor's signing secret",
    description="The secret is derived from the gateway's WEBHOOK_SIGNING_KEY (never stored) and is the same on "
                "every call. Messages still pending follow the change: they go to the new URL, or become `dead` "
                "when the URL is removed. 422 `webhooks_not_configured` when WEBHOOK_SIGNING_KEY is not set.",
    auth=(Auth.OPERATOR_KEY,), body=SetWebhookRequest, response=WebhookSettingView, errors=(404,),
    path_parameters={"vendor_id": "The vendor's id"}))
async def put_webhook(request: web.Request) -> web.Response:
    require_operator(request)
    vendor_id = parse_uuid(request.match_info["vendor_id"], "vendor")
    body = await read_body(request, SetWebhookRequest)
    setting = await request.app[SERVICES].vendors.set_webhook(vendor_id, body.url)
    return json_response(WebhookSettingView(vendor_id=str(vendor_id), url=setting.url, secret=setting.secret,
                                            signature_header=SIGNATURE_HEADER, events=list(setting.events)))


@describe(Operation(
    summary="The vendor's webhook deliveries, newest first, each with every attempt (the delivery log)",
    auth=(Auth.VENDOR_KEY,), response=DeliveryPage, errors=(422,),
    query=(Parameter("status", "Comma-separated: pending, delivered, dead", {"type": "string", "examples": ["dead"]}),
           Parameter("event_type", "Only this event", {"type": "string", "enum": list(VENDOR_EVENTS)}),
           Parameter("limit", f"Page size, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})",
                     {"type": "string", "pattern": "^[0-9]+$"}),
           Parameter("cursor", "`next_cursor` of the previous page", {"type": "string", "pattern": "^[0-9]+$"}))))
async def list_deliveries(request: web.Request) -> web.Response:
    vendor_id = await require_vendor(request)
    check_parameters(request, DELIVERY_PARAMETERS)
    raw_status = request.query.get("status")
    statuses = tuple(dict.fromkeys(part.strip() for part in raw_status.split(","))) if raw_status is not None else ()
    if any(status not in DELIVERY_STATUSES for status in statuses):
        raise InvalidRequest(f"status must be one or more (comma-separated) of {', '.join(DELIVERY_STATUSES)}",
                             code="invalid_status")
    event_type = request.query.get("event_type")
    if event_type is not None and event_type not in VENDOR_EVENTS:
        raise InvalidRequest(f"event_type must be one of {', '.join(VENDOR_EVENTS)}", code="invalid_event_type")
    raw_cursor = request.query.get("cursor")
    cursor = bounded_int(raw_cursor, MAX_DELIVERY_ID) if raw_cursor is not None else None
    if raw_cursor is not None and cursor is None:
        raise InvalidRequest("cursor must be the next_cursor of a previous page", code="invalid_cursor")
    limit = page_limit(request)
    found = await request.app[SERVICES].vendors.deliveries(
        vendor_id, statuses=statuses, event_type=event_type,
        before_id=cursor, limit=limit)
    next_cursor = str(found[-1].id) if len(found) == limit else None
    return json_response(DeliveryPage(deliveries=[_delivery_view(d) for d in found], next_cursor=next_cursor))


REDELIVER_DESCRIPTION = (
    "Puts a `delivered` or `dead` message back to `pending`, its attempts reset to 0, due now, to the vendor's "
    "current URL: the same message and event id (receivers drop an event id they already processed). 409 "
    "`delivery_pending` while it is still pending (it is being retried), 409 `webhook_url_not_set` when the vendor "
    "has no URL."
)


@describe(Operation(summary="Deliver one of the vendor's webhook messages again", description=REDELIVER_DESCRIPTION,
                    auth=(Auth.VENDOR_KEY,), body=None, response=DeliveryView, errors=(404, 409),
                    path_parameters={"delivery_id": "The delivery's id"}))
async def vendor_redeliver(request: web.Request) -> web.Response:
    vendor_id = await require_vendor(request)
    delivery_id = _delivery_id(request)
    delivery = await request.app[SERVICES].vendors.redeliver(delivery_id, vendor_id=vendor_id)
    return json_response(_delivery_view(delivery))


@describe(Operation(summary="Deliver any outbox message again (vendor webhook or reminder)",
                    description=REDELIVER_DESCRIPTION, auth=(Auth.OPERATOR_KEY,), body=None,
                    response=DeliveryView, errors=(404, 409), path_parameters={"delivery_id": "The delivery's id"}))
async def operator_redeliver(request: web.Request) -> web.Response:
    require_operator(request)
    delivery_id = _delivery_id(request)
    delivery = await request.app[SERVICES].vendors.redeliver(delivery_id, vendor_id=None)
    return json_response(_delivery_view(delivery))


routes = [
    web.put("/api/v1/admin/vendors/{vendor_id}/webhook", put_webhook),
    web.post("/api/v1/admin/webhooks/{delivery_id}/redeliver", operator_redeliver),
    web.get("/api/v1/vendor/webhooks/deliveries", list_deliveries),
    web.post("/api/v1/vendor/webhooks/deliveries/{delivery_id}/redeliver", vendor_redeliver),
]
