"""Drift: `plan --refresh`, `apply --refresh` and `apply --refresh-only` against the emulator, whose
admin endpoints change leads behind reconcile's back as people in Marketo's UI do."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import requests

from clirunner import invoke
from reconcile.core.drift import MarketoLead, Observed, compute_drift, same_value
from reconcile.core.model import State, StateLead
from reconcile.store.state import load_state

LEADS = ("leads:\n"
         "  - email: ada@example.com\n"
         "    attributes: {Title: CTO, PostalCode: \"01234\"}\n"
         "  - email: alan@example.com\n"
         "    attributes: {Title: Researcher}\n")


@pytest.fixture
def marketo(emulator_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A workspace with two leads applied to an emulator through REST; (emulator, environment)."""
    emulator = emulator_factory()
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "people.yaml").write_text(LEADS)
    monkeypatch.chdir(tmp_path)
    environ = {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
               "MARKETO_CLIENT_SECRET": emulator.config.client_secret}
    applied = invoke("apply", "--auto-approve", environ=environ)
    assert applied.exit_code == 0, applied.stderr
    emulator.reset_counters()
    return emulator, environ


def lead_id(email: str) -> int:
    return load_state("reconcile.state.json").leads[f"email:{email}"].lead_id


def admin(emulator, method: str, path: str, body: dict | None = None) -> None:
    answer = requests.request(method, emulator.base_url + path, json=body, timeout=10)
    assert answer.status_code == 200, answer.text


def writes(emulator) -> list:
    return [call for call in emulator.calls if call.api in ("rest", "soap") and call.operation == "write"]


def test_plan_without_refresh_makes_no_call_and_says_what_it_compared(marketo) -> None:
    emulator, environ = marketo
    admin(emulator, "POST", f"/_emulator/leads/{lead_id('ada@example.com')}", {"Title": "VP"})
    emulator.reset_counters()
    result = invoke("plan", "--detailed-exitcode", environ=environ)
    assert result.exit_code == 0, result.stderr
    assert "No changes. The lead files match the state; Marketo was not read: --refresh reads it." in result.stdout
    assert "Marketo matches" not in result.stdout
    assert emulator.calls == []


def test_drift_is_seen_restored_and_gone(marketo) -> None:
    emulator, environ = marketo
    ada = lead_id("ada@example.com")
    admin(emulator, "POST", f"/_emulator/leads/{ada}", {"Title": "VP"})

    seen = invoke("plan", "--refresh", "--detailed-exitcode", environ=environ)
    assert seen.exit_code == 2, seen.stderr
    assert 'Title = "VP" (changed in Marketo) → "CTO"' in seen.stdout
    assert f"~ email:ada@example.com (leadId {ada})" in seen.stdout
    assert 'Title = "CTO" → "VP"' in seen.stdout  # the drift report: state → Marketo
    assert "Compared against the state" not in seen.stdout
    reads = [call for call in emulator.calls if call.api == "rest" and call.operation == "read"]
    assert reads and not writes(emulator)

    restored = invoke("apply", "--refresh", "--auto-approve", environ=environ)
    assert restored.exit_code == 0, restored.stderr
    assert next(lead for lead in emulator.leads() if lead["id"] == ada)["attributes"]["Title"] == "CTO"

    again = invoke("plan", "--refresh", "--detailed-exitcode", environ=environ)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "Marketo matches the state" in again.stdout


def test_refresh_reads_300_ids_per_call_and_only_managed_fields(marketo) -> None:
    emulator, environ = marketo
    with open("leads/people.yaml", "a") as handle:
        for number in range(400):
            handle.write(f"  - email: p{number}@example.com\n    attributes: {{LastName: P{number}}}\n")
    assert invoke("apply", "--auto-approve", environ=environ).exit_code == 0
    emulator.reset_counters()
    result = invoke("plan", "--refresh", "--format", "json", environ=environ)
    assert result.exit_code == 0, result.stderr
    reads = [call for call in emulator.calls if call.api == "rest" and call.operation == "read"]
    assert len(reads) == 2  # ⌈402 / 300⌉
    assert json.loads(result.stdout)["drift"] == {"read": 402, "leads": []}
    assert "402 leads from Marketo: 2 Get Leads calls" in result.stderr


def test_refresh_survives_refused_and_failed_reads(marketo) -> None:
    emulator, environ = marketo
    admin(emulator, "DELETE", f"/_emulator/leads/{lead_id('ada@example.com')}")
    emulator.reset_counters()
    emulator.faults.update(fail_every=2, fail_reason="unavailable")  # the email look-up fails once
    result = invoke("plan", "--refresh", "--detailed-exitcode", environ=environ)
    assert result.exit_code == 2, result.stderr
    assert "# email:ada@example.com will be created" in result.stdout
    refused = [call for call in emulator.calls if call.api == "rest" and call.outcome != "ok"]
    assert refused, [(call.api, call.operation, call.outcome) for call in emulator.calls]


def test_apply_through_soap_refreshes_through_rest(marketo) -> None:
    emulator, environ = marketo
    both = {**environ, "MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": emulator.user_id,
            "MARKETO_ENCRYPTION_KEY": emulator.encryption_key}
    ada = lead_id("ada@example.com")
    admin(emulator, "POST", f"/_emulator/leads/{ada}", {"Title": "VP"})
    emulator.reset_counters()
    result = invoke("apply", "--api", "soap", "--refresh", "--auto-approve", environ=both)
    assert result.exit_code == 0, result.stderr
    assert 'Title = "VP" (changed in Marketo) → "CTO"' in result.stdout
    assert {(call.api, call.operation) for call in emulator.calls} >= {("rest", "read"), ("soap", "write")}
    assert not [call for call in emulator.calls if call.api == "rest" and call.operation == "write"]
    assert next(lead for lead in emulator.leads() if lead["id"] == ada)["attributes"]["Title"] == "CTO"


def test_refresh_only_records_marketo_values_and_sends_no_write(marketo) -> None:
    emulator, environ = marketo
    ada = lead_id("ada@example.com")
    admin(emulator, "POST", f"/_emulator/leads/{ada}", {"Title": "VP", "PostalCode": ""})
    emulator.reset_counters()
    serial = load_state("reconcile.state.json").serial

    declined = invoke("apply", "--refresh-only", environ=environ, stdin="no\n", tty=True)
    assert declined.exit_code == 0 and 'Title      = "CTO" → "VP"' in declined.stdout
    assert load_state("reconcile.state.json").serial == serial

    result = invoke("apply", "--refresh-only", environ=environ, stdin="yes\n", tty=True)
    assert result.exit_code == 0, result.stderr
    assert "nothing was sent to Marketo" in result.stdout
    state = load_state("reconcile.state.json")
    assert dict(state.leads["email:ada@example.com"].attributes) == {"Title": "VP", "PostalCode": None}
    assert state.serial == serial + 1
    assert not writes(emulator)
    # the state now agrees with Marketo: the lead files are what differ
    plan = invoke("plan", environ=environ)
    assert 'Title      = "VP" → "CTO"' in plan.stdout


def test_apply_refresh_records_what_marketo_already_agrees_with(marketo) -> None:
    """Someone made in Marketo the change a lead file now declares, and another lead drifted: apply
    restores the second and the state learns the first, so the next refreshed plan is empty."""
    emulator, environ = marketo
    Path("leads/people.yaml").write_text(LEADS.replace("Title: Researcher", "Title: Professor"))
    admin(emulator, "POST", f"/_emulator/leads/{lead_id('alan@example.com')}", {"Title": "Professor"})
    admin(emulator, "POST", f"/_emulator/leads/{lead_id('ada@example.com')}", {"Title": "VP"})

    result = invoke("apply", "--refresh", "--auto-approve", environ=environ)
    assert result.exit_code == 0, result.stderr
    assert "1 to update" in result.stdout and "1 unchanged" in result.stdout
    state = load_state("reconcile.state.json")
    assert state.leads["email:alan@example.com"].attributes["Title"] == "Professor"
    assert state.leads["email:ada@example.com"].attributes["Title"] == "CTO"
    assert invoke("plan", "--refresh", "--detailed-exitcode", environ=environ).exit_code == 0
    assert invoke("plan", "--detailed-exitcode", environ=environ).exit_code == 0


def test_a_merge_in_marketo_is_followed_by_email(marketo) -> None:
    emulator, environ = marketo
    ada, alan = lead_id("ada@example.com"), lead_id("alan@example.com")
    assert invoke("state", "rm", "email:alan@example.com").exit_code == 0
    Path("leads/people.yaml").write_text(LEADS.split("  - email: alan")[0])
    # someone gives Alan's lead Ada's address, and merges Ada's lead into it
    admin(emulator, "POST", f"/_emulator/leads/{alan}", {"Email": "ada@example.com"})
    admin(emulator, "POST", "/_emulator/merge", {"winner": alan, "loser": ada})

    seen = invoke("plan", "--refresh", "--detailed-exitcode", environ=environ)
    assert seen.exit_code == 2, seen.stderr
    assert f"lead {ada} no longer exists in Marketo (merged away); lead {alan}, which has its email" in seen.stdout
    assert 'Title = "Researcher" (changed in Marketo) → "CTO"' in seen.stdout

    assert invoke("apply", "--refresh", "--auto-approve", environ=environ).exit_code == 0
    assert lead_id("ada@example.com") == alan
    assert next(lead for lead in emulator.leads() if lead["id"] == alan)["attributes"]["Title"] == "CTO"
    assert invoke("plan", "--refresh", "--detailed-exitcode", environ=environ).exit_code == 0


def test_a_deleted_lead_is_recreated_when_planned(marketo) -> None:
    emulator, environ = marketo
    ada = lead_id("ada@example.com")
    admin(emulator, "DELETE", f"/_emulator/leads/{ada}")

    seen = invoke("plan", "--refresh", "--detailed-exitcode", environ=environ)
    assert seen.exit_code == 2, seen.stderr
    assert f"lead {ada} no longer exists in Marketo (deleted, or merged away)" in seen.stdout
    assert "# email:ada@example.com will be created" in seen.stdout

    assert invoke("apply", "--refresh", "--auto-approve", environ=environ).exit_code == 0
    new_id = lead_id("ada@example.com")
    assert new_id != ada and any(lead["id"] == new_id for lead in emulator.leads())
    assert invoke("plan", "--refresh", "--detailed-exitcode", environ=environ).exit_code == 0


def test_two_declarations_one_marketo_lead_after_refresh_exit_3(marketo) -> None:
    emulator, environ = marketo
    ada, alan = lead_id("ada@example.com"), lead_id("alan@example.com")
    admin(emulator, "POST", f"/_emulator/leads/{alan}", {"Email": "ada@example.com"})
    admin(emulator, "POST", "/_emulator/merge", {"winner": alan, "loser": ada})
    assert invoke("plan", environ=environ).exit_code == 0  # the state alone cannot know
    emulator.reset_counters()

    for command in (["plan", "--refresh"], ["apply", "--refresh", "--auto-approve"]):
        result = invoke(*command, environ=environ)
        assert result.exit_code == 3, result.stdout + result.stderr
        assert str(alan) in result.stderr and "leads/people.yaml:2" in result.stderr
        assert "leads/people.yaml:4" in result.stderr
    assert not writes(emulator)


def test_refresh_with_soap_only_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "people.yaml").write_text(LEADS)
    monkeypatch.chdir(tmp_path)
    soap = {"MARKETO_SOAP_ENDPOINT": "http://127.0.0.1:9/soap/mktows/2_1", "MARKETO_USER_ID": "user",
            "MARKETO_ENCRYPTION_KEY": "key"}
    for command in (["plan", "--refresh", "--api", "soap"], ["apply", "--refresh", "--auto-approve"]):
        result = invoke(*command, environ=soap)
        assert result.exit_code == 64, result.stderr
        assert "REST API" in result.stderr and "MARKETO_REST_ENDPOINT" in result.stderr
        assert "no live instance answers SOAP reads" in result.stderr


def test_refresh_checks_the_state_instance_first(marketo) -> None:
    emulator, environ = marketo
    other = {**environ, "MARKETO_REST_ENDPOINT": "https://123-ABC-456.mktorest.com"}
    emulator.reset_counters()
    result = invoke("plan", "--refresh", environ=other)
    assert result.exit_code == 3, result.stderr
    assert "emulator" in result.stderr and "123-ABC-456" in result.stderr


# -- the pure part -------------------------------------------------------------------------------

def test_compute_drift_compares_values_as_marketo_returns_them() -> None:
    state = State(lineage="l", serial=3, leads={
        "email:a@x": StateLead(1, "a@x", None, None, {"Score": "1.50", "Title": None, "City": "Oslo"}),
        "email:b@x": StateLead(None, "b@x", None, None, {"Title": "x"})})
    observed = Observed(by_id={1: MarketoLead(1, "A@x", {"Score": "1.5", "Title": "", "City": "Bergen"})})
    drift = compute_drift(state, dataclasses.replace(observed, numeric=frozenset({"Score"})))
    assert drift.read == 1
    assert [(c.name, c.recorded, c.current) for c in drift.leads[0].changes] == [("City", "Oslo", "Bergen")]
    assert drift.refreshed.leads["email:a@x"].attributes["City"] == "Bergen"
    assert drift.refreshed.leads["email:b@x"] == state.leads["email:b@x"]
    assert drift.refreshed.serial == 3
    assert same_value(None, "") and not same_value("0042", "42") and same_value("0042", "42", numeric=True)
    assert compute_drift(state, observed).leads[0].changes[0].name == "City"  # Score is text: "1.50" ≠ "1.5"
    assert len(compute_drift(state, observed).leads[0].changes) == 2


def test_refresh_options_that_cannot_go_together_are_usage_errors(marketo) -> None:
    emulator, environ = marketo
    for command in (["apply", "--refresh", "--refresh-only"], ["apply", "plan.json", "--refresh-only"],
                    ["plan", "--refresh", "--out", "plan.json"]):
        result = invoke(*command, environ=environ)
        assert result.exit_code == 64, (command, result.stderr)
    assert not writes(emulator)


def test_apply_refresh_with_nothing_to_send_still_records_what_marketo_changed(marketo) -> None:
    emulator, environ = marketo
    Path("leads/people.yaml").write_text(LEADS.replace("Title: Researcher", "Title: Professor"))
    admin(emulator, "POST", f"/_emulator/leads/{lead_id('alan@example.com')}", {"Title": "Professor"})
    emulator.reset_counters()

    result = invoke("apply", "--refresh", "--auto-approve", environ=environ)
    assert result.exit_code == 0, result.stderr
    assert "Recorded Marketo's values of 1 lead" in result.stdout
    assert load_state("reconcile.state.json").leads["email:alan@example.com"].attributes["Title"] == "Professor"
    assert not writes(emulator)
    again = invoke("apply", "--refresh-only", "--auto-approve", environ=environ)
    assert "Nothing to record: the state matches Marketo." in again.stdout


def test_drift_lines_tell_a_lead_declared_by_id_what_to_change() -> None:
    from reconcile.core.drift import LeadDrift
    from reconcile.core.render import _lead_drift_lines

    [gone] = _lead_drift_lines(LeadDrift("id:7", 7, deleted=True))
    assert "still declares that leadId: remove it" in gone
    [merged] = _lead_drift_lines(LeadDrift("id:7", 7, merged_into=9))
    assert merged.endswith("now holds it: declare leadId 9 in its lead file")
    [by_email] = _lead_drift_lines(LeadDrift("email:a@x", 7, deleted=True))
    assert by_email.endswith("if it is declared, it is created again")


def test_a_declared_lead_id_marketo_no_longer_has_stops_plan_refresh_with_its_place(marketo) -> None:
    emulator, environ = marketo
    ada, alan = lead_id("ada@example.com"), lead_id("alan@example.com")
    Path("leads/people.yaml").write_text(f"leads:\n  - leadId: {ada}\n    attributes: {{Title: CTO}}\n"
                                         f"  - leadId: {alan}\n    attributes: {{Title: Researcher}}\n")
    assert invoke("apply", "--auto-approve", environ=environ).exit_code == 0  # the state now keys them by ID
    extra = max(lead["id"] for lead in emulator.leads()) + 100  # never in this Marketo
    with open("leads/people.yaml", "a") as handle:
        handle.write(f"  - leadId: {extra}\n    attributes: {{Title: Ghost}}\n")
    admin(emulator, "DELETE", f"/_emulator/leads/{ada}")
    emulator.reset_counters()

    result = invoke("plan", "--refresh", environ=environ)
    assert result.exit_code == 3, result.stdout + result.stderr
    assert f"leads/people.yaml:2: leadId {ada} is not in Marketo" in result.stderr
    assert f"leads/people.yaml:6: leadId {extra} is not in Marketo" in result.stderr
    assert "remove `leadId:" in result.stderr  # says what to do
    assert "leads/people.yaml:4" not in result.stderr
    assert not writes(emulator)

    applied = invoke("apply", "--refresh", "--auto-approve", environ=environ)
    assert applied.exit_code == 3, applied.stdout + applied.stderr
    assert f"leads/people.yaml:2: leadId {ada} is not in Marketo" in applied.stderr
    assert not writes(emulator)


def test_a_declared_lead_id_merged_away_names_the_winner_to_declare() -> None:
    from reconcile.core.drift import Drift, LeadDrift, gone_declarations
    from reconcile.core.model import Lead
    from reconcile.errors import Location

    drift = Drift(leads=(LeadDrift("id:7", 7, merged_into=9),), refreshed=State(lineage="l", serial=1, leads={}),
                  read=1, missing_ids=frozenset({7}))
    [error] = gone_declarations([Lead(Location("leads/a.yaml", 3), lead_id=7), Lead(Location("leads/a.yaml", 5),
                                                                                    lead_id=9)], drift)
    assert error.lines() == ["leads/a.yaml:3: leadId 7 is not in Marketo: Marketo merged it into lead 9: "
                             "declare `leadId: 9` instead"]


def test_a_title_cleared_in_marketo_is_drift(marketo) -> None:
    emulator, environ = marketo
    ada = lead_id("ada@example.com")
    admin(emulator, "POST", f"/_emulator/leads/{ada}", {"Title": None})
    seen = invoke("plan", "--refresh", "--detailed-exitcode", environ=environ)
    assert seen.exit_code == 2, seen.stdout + seen.stderr
    assert 'Title = "CTO" → null' in seen.stdout  # Marketo left the null Title out of its answer
    assert 'Title = null (changed in Marketo) → "CTO"' in seen.stdout
