"""The transport registry: each transport declares its name, call, caps and capabilities once, and
what plan and apply say about calls comes from there."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import invoke

from reconcile.app.operation import Operation
from reconcile.app.plan import _plan_and_render
from reconcile.app.session import Output, Session
from reconcile.errors import UsageError
from reconcile.remote import registry
from reconcile.remote.base import TransportInfo
from reconcile.remote.rest.transport import RestTransport
from reconcile.remote.soap.transport import SoapTransport


@pytest.mark.parametrize("transport", [SoapTransport, RestTransport])
def test_each_transport_is_what_its_registry_line_says(transport) -> None:
    info = registry.get(transport.name)
    assert (transport.call_name, transport.max_records, transport.max_call_bytes) == \
        (info.call_name, info.max_records, info.max_call_bytes)
    assert (transport.can_delete, transport.can_lists) == (info.can_delete, info.can_lists)
    assert transport.can_lists  # both manage static list membership


def test_an_unknown_api_names_the_registered_ones() -> None:
    with pytest.raises(UsageError, match="--api must be 'soap' or 'rest', not 'bulk'"):
        registry.select_api("bulk", {})


def test_credentials_of_two_transports_are_refused_and_one_set_chooses() -> None:
    rest = {"MARKETO_CLIENT_ID": "i", "MARKETO_CLIENT_SECRET": "s", "MARKETO_REST_ENDPOINT": "https://x"}
    soap = {"MARKETO_SOAP_ENDPOINT": "https://y", "MARKETO_USER_ID": "u", "MARKETO_ENCRYPTION_KEY": "k"}
    assert registry.select_api(None, rest) == "rest" and registry.select_api(None, soap) == "soap"
    assert registry.select_api(None, {}) == "soap"
    with pytest.raises(UsageError, match="choose one with --api rest.soap"):
        registry.select_api(None, {**rest, **soap})


def test_a_new_registry_line_is_a_new_api_for_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bulk = TransportInfo(name="bulk", call_name="Bulk Import Leads", max_records=2, credential_variables=("BULK",))
    monkeypatch.setattr(registry, "_TRANSPORTS", (*registry._TRANSPORTS, bulk))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text(
        "leads:\n" + "".join(f"  - email: p{n}@example.com\n" for n in range(5)))
    assert registry.select_api(None, {"BULK": "yes"}) == "bulk"
    events: list = []
    _plan_and_render(Session(on_event=events.append), Operation(api="bulk"))
    shown = "".join(event.text for event in events if isinstance(event, Output))
    assert "3 Bulk Import Leads calls" in shown  # 5 records, 2 a call: the transport's own cap


def test_apply_refuses_a_batch_larger_than_the_transports_call() -> None:
    result = invoke("apply", "--auto-approve", "--batch-size", "301")
    assert result.exit_code == 64
    assert "--batch-size must be between 1 and 300" in result.stderr
