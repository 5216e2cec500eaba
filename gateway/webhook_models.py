"""Bodies of the vendor-webhook routes (pydantic): the operator's webhook setting and the vendor's delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from gateway.models import RequestModel


class SetWebhookRequest(RequestModel):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048, strip_whitespace=True)] | None = Field(
        description="An absolute http or https URL receiving the vendor's events; null removes the webhook",
        examples=["https://vendor.example/paygo/webhooks"])


class WebhookSettingView(BaseModel):
    vendor_id: str
    url: str | None
    secret: str | None = Field(
        description="The signing secret of this vendor's webhooks (derived, never stored); null when no URL is set",
        examples=["whsec_3f1c0d9b5a..."])
    signature_header: str = Field(examples=["PayGo-Signature"])
    events: list[str] = Field(examples=[["session.started", "session.ended"]])


class DeliveryAttemptView(BaseModel):
    attempt: int
    outcome: str = Field(description="delivered, retrying, dead, or superseded (the message changed meanwhile)")
    status_code: int | None = Field(description="The receiver's HTTP status; null when it did not answer")
    error: str | None
    duration_ms: int
    attempted_at: str


class DeliveryView(BaseModel):
    id: str = Field(description="The delivery id (`PayGo-Delivery` header), for redeliver", examples=["42"])
    event_id: str = Field(examples=["session.started:2b1f0c9e-5d4a-4c3b-9a8f-7e6d5c4b3a29"])
    event_type: str = Field(examples=["session.started"])
    status: str = Field(description="pending, delivered or dead", examples=["delivered"])
    attempts: int = Field(description="Attempts since the message was queued or last redelivered")
    redeliveries: int
    target_url: str
    created_at: str
    next_attempt_at: str | None = Field(description="When it is tried next (pending only)")
    delivered_at: str | None
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any] = Field(description="The event exactly as sent (the request body)")
    log: list[DeliveryAttemptView] = Field(description="Every attempt, oldest first")


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryView]
    next_cursor: str | None
