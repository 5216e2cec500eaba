"""Vendors as the operator and the vendors themselves manage them: registration, API keys, webhook receivers and
their delivery log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from billing.outbound import check_target_url
from billing.unit_of_work import Database
from billing.vendor_keys import RotatedKey, VendorKey, list_keys, revoke_keys, rotate_key
from billing.vendor_webhooks import VENDOR_EVENTS, Delivery, redeliver, set_webhook_url, vendor_deliveries
from billing.vendors import NewVendor, create_vendor, rotate_demo_vendor_key, vendor_for_key
from billing.webhooks import vendor_secret
from kernel.errors import InvalidRequest, NotFound


@dataclass(frozen=True, slots=True)
class WebhookSetting:
    vendor_id: UUID
    url: str | None
    secret: str | None  # derived, never stored; shown to the operator who set the URL
    events: tuple[str, ...] = VENDOR_EVENTS


class VendorService:
    def __init__(self, db: Database, *, webhook_signing_key: str | None,
                 default_rotation_overlap_seconds: int, allow_private_webhook_targets: bool = False) -> None:
        self.db = db
        self.webhook_signing_key = webhook_signing_key
        self.allow_private_webhook_targets = allow_private_webhook_targets
        self.default_rotation_overlap_seconds = default_rotation_overlap_seconds

    async def create(self, name: str, direct_charge_grace_seconds: int = 0) -> NewVendor:
        async with self.db.transaction() as work:
            return await create_vendor(work.conn, name, direct_charge_grace_seconds)

    async def rotate_demo_key(self, name: str) -> NewVendor:
        """The demo vendor of the embedded default (made once), with a fresh key for this run."""
        async with self.db.transaction() as work:
            return await rotate_demo_vendor_key(work.conn, name)

    async def vendor_for_key(self, api_key: str) -> UUID | None:
        async with self.db.connection() as conn:
            return await vendor_for_key(conn, api_key)

    # --- keys --------------------------------------------------------------------------------------------------

    async def rotate_key(self, vendor_id: UUID, overlap_seconds: int | None = None) -> RotatedKey:
        overlap = self.default_rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
        async with self.db.transaction() as work:
            return await rotate_key(work.conn, vendor_id, overlap)

    async def revoke_keys(self, vendor_id: UUID, key_prefix: str | None = None) -> int:
        async with self.db.transaction() as work:
            return await revoke_keys(work.conn, vendor_id, key_prefix)

    async def keys(self, vendor_id: UUID) -> list[VendorKey]:
        async with self.db.connection() as conn:
            return await list_keys(conn, vendor_id)

    # --- webhooks ----------------------------------------------------------------------------------------------

    async def set_webhook(self, vendor_id: UUID, url: str | None) -> WebhookSetting:
        """Set or remove the vendor's receiver; answers the vendor's signing secret (derived, the same every time)."""
        checked = None
        if url is not None:
            if self.webhook_signing_key is None:
                raise InvalidRequest("this gateway sends no webhooks (WEBHOOK_SIGNING_KEY is not set)",
                                     code="webhooks_not_configured")
            checked = check_target_url(url, field="webhook_url", allow_private=self.allow_private_webhook_targets)
        async with self.db.transaction() as work:
            if not await set_webhook_url(work.conn, vendor_id, checked):
                raise NotFound(f"no vendor with id {vendor_id}", code="vendor_not_found")
        secret = (vendor_secret(self.webhook_signing_key, vendor_id)
                  if checked is not None and self.webhook_signing_key is not None else None)
        return WebhookSetting(vendor_id, checked, secret)

    async def deliveries(self, vendor_id: UUID, *, statuses: Sequence[str], event_type: str | None,
                         before_id: int | None, limit: int) -> list[Delivery]:
        async with self.db.connection() as conn:
            return await vendor_deliveries(conn, vendor_id, statuses=statuses, event_type=event_type,
                                           before_id=before_id, limit=limit)

    async def redeliver(self, delivery_id: int, *, vendor_id: UUID | None) -> Delivery:
        """`vendor_id`: the calling vendor (only its own messages exist for it); None: the operator (any)."""
        async with self.db.transaction() as work:
            return await redeliver(work.conn, delivery_id, vendor_id=vendor_id)
