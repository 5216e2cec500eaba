"""The client against the gateway's contract: every operation of the OpenAPI document has a method in both clients
(or is on the client's explicit list of exclusions), both clients have the same methods with the same signatures,
every field of the client's models is in the gateway's schema (and required there when the client requires it), the
API versions agree, and mypy passes."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from paygo_client import API_VERSION, EXCLUDED_OPERATIONS, AsyncPayGo, PayGo, models, operations_of
from pydantic import BaseModel

from tests.conftest import Gateway

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients/python"

# Each client model and the gateway schema(s) it reads (allOf: the card fields come with card permissions).
MODEL_SCHEMAS: dict[type[BaseModel], tuple[str, ...]] = {
    models.Payment: ("PaymentView",),
    models.Reminder: ("ReminderView",),
    models.Permission: ("PermissionView", "CardPermissionFields"),
    models.CreatedPermission: ("CreatedPermissionView", "CardPermissionFields"),
    models.ZcashBalance: ("BalanceView",),
    models.EthereumBalance: ("EthereumBalanceView",),
    models.Refund: ("RefundView",),
    models.CheckoutPayment: ("CheckoutPaymentView",),
    models.Checkout: ("CheckoutView",),
    models.OpenSession: ("OpenSessionView",),
    models.LedgerEntry: ("LedgerEntryView",),
    models.Wallet: ("WalletView",),
    models.Payout: ("PayoutView",),
    models.Payouts: ("PayoutListView",),
    models.Quote: ("QuoteView",),
    models.OpenedSession: ("SessionCreatedView",),
    models.DirectCharge: ("DirectChargeView",),
    models.EndedSession: ("SessionEndView",),
    models.Session: ("SessionView",),
    models.VendorSession: ("VendorSessionView",),
    models.VendorSessionPage: ("VendorSessionPage",),
    models.ChargeLine: ("ChargeLineView",),
    models.VendorSessionDetail: ("VendorSessionDetailView",),
    models.ChargesSummaryRow: ("ChargesSummaryRow",),
    models.ChargesSummary: ("ChargesSummaryView",),
    models.DeliveryAttempt: ("DeliveryAttemptView",),
    models.Delivery: ("DeliveryView",),
    models.DeliveryPage: ("DeliveryPage",),
    models.CreatedVendor: ("VendorCreatedView",),
    models.RotatedVendorKey: ("RotatedVendorKeyView",),
    models.RevokedVendorKeys: ("RevokedVendorKeysView",),
    models.VendorKey: ("VendorKeyView",),
    models.VendorKeys: ("VendorKeysView",),
    models.VendorAccount: ("VendorAccountView",),
    models.WebhookSetting: ("WebhookSettingView",),
    models.AwaitingPermission: ("AwaitingPermissionView",),
    models.PendingPayment: ("PendingPaymentView",),
    models.WebhookBacklog: ("BacklogView",),
    models.Job: ("JobView",),
    models.OperatorOverview: ("OperatorOverviewView",),
    models.ActiveSessionsPoint: ("ActiveSessionsPointView",),
    models.RevenuePoint: ("RevenuePointView",),
    models.OperatorTimeseries: ("OperatorTimeseriesView",),
    models.PermissionChange: ("PermissionChangeView",),
    models.AuditTrail: ("AuditTrailView",),
    models.HealthCheck: ("HealthCheckView",),
    models.Health: ("HealthView",),
    models.Status: ("StatusView",),
}


@pytest.fixture
async def document(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.get("/api/v1/openapi.json")
    assert response.status == 200
    return await response.json()


def _document_operations(document: dict[str, Any]) -> set[str]:
    return {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}


def _client_operations(client: type) -> dict[str, list[str]]:
    """Operation → the client's methods that call it."""
    found: dict[str, list[str]] = {}
    for name, member in inspect.getmembers(client):
        for operation in operations_of(member):
            found.setdefault(operation, []).append(name)
    return found


@pytest.mark.parametrize("client", [PayGo, AsyncPayGo])
async def test_every_operation_has_a_client_method(document: dict[str, Any], client: type) -> None:
    offered = _document_operations(document)
    covered = _client_operations(client)
    missing = sorted(offered - covered.keys() - EXCLUDED_OPERATIONS.keys())
    assert not missing, f"operations without a {client.__name__} method (add one, or list it in EXCLUDED_OPERATIONS)"
    assert not sorted(covered.keys() - offered), "methods declare operations the gateway does not have"
    assert not sorted(EXCLUDED_OPERATIONS.keys() - offered), "exclusions of operations the gateway does not have"
    assert not sorted(EXCLUDED_OPERATIONS.keys() & covered.keys()), "an excluded operation has a method"


async def test_the_api_versions_agree(document: dict[str, Any]) -> None:
    assert document["info"]["version"].split(".")[0] == API_VERSION.split(".")[0]


def _public_methods(client: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(client, callable)
            if not name.startswith("_")}


def test_both_clients_have_the_same_methods_and_signatures() -> None:
    blocking, asynchronous = _public_methods(PayGo), _public_methods(AsyncPayGo)
    assert blocking.keys() == asynchronous.keys()
    for name, signature in blocking.items():
        other = asynchronous[name]
        assert list(signature.parameters.values()) == list(other.parameters.values()), name
    assert inspect.signature(PayGo.__init__) == inspect.signature(AsyncPayGo.__init__)


async def test_client_models_read_only_fields_the_gateway_documents(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model, names in MODEL_SCHEMAS.items():
        documented = {field for name in names for field in schemas[name]["properties"]}
        required = set(schemas[names[0]].get("required", []))
        assert set(model.model_fields) <= documented, (model.__name__, sorted(set(model.model_fields) - documented))
        needed = {name for name, field in model.model_fields.items() if field.is_required()}
        assert needed <= required, (model.__name__, "the client needs a field the gateway may leave out")
        assert not (set(model.model_fields) - needed) & required, (model.__name__, "a default for a field every "
                                                                   "answer carries")


def test_mypy_passes_on_the_client_and_the_examples(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(CLIENT / "pyproject.toml"), "--cache-dir",
         str(tmp_path), str(CLIENT / "paygo_client"), str(ROOT / "examples")],
        capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
