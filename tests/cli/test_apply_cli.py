"""`reconcile apply` end to end through the whole CLI, against the emulator on loopback."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from clirunner import invoke
from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID

from reconcile.inputs.cache import workspace_dir
from reconcile.store.state import lead_to_json, load_state

ROOT = Path(__file__).resolve().parents[2]


def credentials(emulator, key: str = EMULATOR_TEST_ENCRYPTION_KEY) -> dict[str, str]:
    return {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
            "MARKETO_ENCRYPTION_KEY": key}


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "people.yaml": "leads:\n"
        "  - email: ada@example.com\n    attributes: {FirstName: Ada, PostalCode: 01234}\n"
        "  - foreignSysPersonId: \"0042\"\n    foreignSysType: SFDC\n    email: grace@example.com\n"
        "    attributes: {FirstName: Grace, Title: Admiral}\n"
        "  - email: alan@example.com\n    attributes: {FirstName: Alan, Unsubscribed: no}\n",
    })


def state_leads(workspace: Path) -> dict:
    state = load_state(workspace / "reconcile.state.json")
    return {key: lead_to_json(lead) for key, lead in state.leads.items()}


def assert_state_agrees_with_emulator(workspace: Path, emulator) -> None:
    recorded = state_leads(workspace)
    in_marketo = {lead["id"]: lead for lead in emulator.leads()}
    assert len({r["leadId"] for r in recorded.values()}) == len(recorded), "one Marketo lead per state record"
    for key, record in recorded.items():
        lead = in_marketo[record["leadId"]]
        assert (lead["email"] or "").lower() == (record["email"] or "").lower(), key
        assert lead["foreignSysPersonId"] == record["foreignSysPersonId"], key
        for name, value in record["attributes"].items():
            assert lead["attributes"].get(name) == value, (key, name)


def test_apply_then_nothing_then_one_update_keyed_by_id(workspace: Path, emulator) -> None:
    env = credentials(emulator)
    first = invoke("apply", "--auto-approve", environ=env)
    assert first.exit_code == 0, first.stderr
    assert "Apply complete: 3 created, 0 updated, 0 failed" in first.stdout
    assert len(emulator.leads()) == 3
    assert all(record["leadId"] for record in state_leads(workspace).values())
    assert_state_agrees_with_emulator(workspace, emulator)
    calls_after_first = len(emulator.calls)

    second = invoke("apply", "--auto-approve", environ=env)
    assert second.exit_code == 0
    assert "Nothing to apply." in second.stdout
    assert len(emulator.calls) == calls_after_first, "a second apply sends nothing"

    people = workspace / "leads" / "people.yaml"
    people.write_text(people.read_text().replace("Title: Admiral", "Title: Rear Admiral"))
    grace_id = state_leads(workspace)["fsp:SFDC:0042"]["leadId"]
    sent = []
    original_sync = emulator.store.sync

    def spy(records, dedup_enabled):
        records = list(records)
        sent.append(records)
        return original_sync(records, dedup_enabled)

    emulator.store.sync = spy
    third = invoke("apply", "--auto-approve", environ=env)
    assert third.exit_code == 0, third.stderr
    assert '~ Title = "Admiral" → "Rear Admiral"' in third.stdout
    assert len(sent) == 1 and len(sent[0]) == 1, "exactly one call with one record"
    record = sent[0][0]
    assert record.lead_id == grace_id and record.email is None and record.foreign_sys_person_id is None
    assert tuple(record.attributes) == (("Title", "Rear Admiral"),)
    assert_state_agrees_with_emulator(workspace, emulator)
    assert invoke("plan", "--detailed-exitcode", environ=env).exit_code == 0


def test_saved_plan_applies_exactly_and_goes_stale(workspace: Path, emulator) -> None:
    env = credentials(emulator)
    assert invoke("plan", "--out", "tfplan.json").exit_code == 0
    (workspace / "leads" / "more.yaml").write_text("leads:\n  - email: new@example.com\n")
    stale = invoke("apply", "tfplan.json", environ=env)
    assert stale.exit_code == 6
    assert "saved plan is stale" in stale.stderr and "added leads/more.yaml" in stale.stderr
    assert emulator.calls == [] and not (workspace / "reconcile.state.json").exists()

    (workspace / "leads" / "more.yaml").unlink()
    applied = invoke("apply", "tfplan.json", environ=env)  # a saved plan needs no confirmation
    assert applied.exit_code == 0, applied.stderr
    assert len(emulator.leads()) == 3
    again = invoke("apply", "tfplan.json", environ=env)
    assert again.exit_code == 6 and "the state file was created since (now serial 1)" in again.stderr


def test_apply_asks_for_confirmation(workspace: Path, emulator) -> None:
    env = credentials(emulator)
    refused = invoke("apply", environ=env, stdin="")
    assert refused.exit_code == 64 and "--auto-approve" in refused.stderr
    declined = invoke("apply", environ=env, stdin="no\n", tty=True)
    assert declined.exit_code == 0 and "Apply cancelled; nothing was sent." in declined.stdout
    assert emulator.leads() == []
    accepted = invoke("apply", environ=env, stdin="yes\n", tty=True)
    assert accepted.exit_code == 0 and len(emulator.leads()) == 3


def test_missing_credentials_are_named(workspace: Path) -> None:
    result = invoke("apply", "--auto-approve", environ={"MARKETO_USER_ID": "u"})
    assert result.exit_code == 64
    assert "MARKETO_SOAP_ENDPOINT" in result.stderr and "MARKETO_ENCRYPTION_KEY" in result.stderr


def test_plain_http_only_to_loopback(workspace: Path) -> None:
    env = {"MARKETO_SOAP_ENDPOINT": "http://marketo.example.com/soap/mktows/2_1", "MARKETO_USER_ID": "u",
           "MARKETO_ENCRYPTION_KEY": "k"}
    result = invoke("apply", "--auto-approve", environ=env)
    assert result.exit_code == 64 and "http://" in result.stderr


def test_batch_size_above_300_is_a_usage_error(workspace: Path, emulator) -> None:
    result = invoke("apply", "--auto-approve", "--batch-size", "301", environ=credentials(emulator))
    assert result.exit_code == 64 and "300" in result.stderr
    assert emulator.calls == []


def test_batch_size_splits_calls(workspace: Path, emulator) -> None:
    result = invoke("apply", "--auto-approve", "--batch-size", "2", environ=credentials(emulator))
    assert result.exit_code == 0, result.stderr
    assert len([c for c in emulator.calls if c.outcome == "ok"]) == 2
    assert "call 1/2" in result.stderr and "call 2/2" in result.stderr


def test_failed_records_exit_5_and_are_not_recorded(workspace: Path, emulator) -> None:
    (workspace / "leads" / "bad.yaml").write_text(
        "leads:\n  - email: odd@example.com\n    attributes: {NotAMarketoField: x}\n")
    result = invoke("apply", "--auto-approve", environ=credentials(emulator))
    assert result.exit_code == 5
    assert "email:odd@example.com" in result.stderr and "20105" in result.stderr
    recorded = state_leads(workspace)
    assert "email:odd@example.com" not in recorded and len(recorded) == 3
    retry = invoke("plan", "--format", "json")
    assert json.loads(retry.stdout)["summary"]["create"] == 1, "the failed lead stays pending"


def test_authentication_failure_exits_4_and_records_nothing(workspace: Path, emulator) -> None:
    result = invoke("apply", "--auto-approve", environ=credentials(emulator, key="wrong-key"))
    assert result.exit_code == 4
    assert "20014" in result.stderr
    assert emulator.leads() == []
    assert not (workspace / "reconcile.state.json").exists() or state_leads(workspace) == {}


def test_apply_emulator_twice_has_nothing_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(ROOT / "leads", tmp_path / "leads")
    monkeypatch.chdir(tmp_path)
    first = invoke("apply", "--emulator", "--auto-approve")
    assert first.exit_code == 0, first.stderr
    assert "Apply complete: 5 created, 0 updated, 1 adopted, 0 failed" in first.stdout
    db_path = workspace_dir(tmp_path / "reconcile.state.json", {}) / "emulator-db.json"
    database = json.loads(db_path.read_text())
    assert len(database["leads"]) == 6
    assert not (tmp_path / ".reconcile").exists(), "the emulator's database is not kept in the repository"
    assert state_leads(tmp_path)["id:1090238"]["leadId"] == 1090238
    second = invoke("apply", "--emulator", "--auto-approve")
    assert second.exit_code == 0 and "Nothing to apply." in second.stdout
    assert json.loads(db_path.read_text()) == database
    assert invoke("plan", "--detailed-exitcode").exit_code == 0


def test_forget_orphans(workspace: Path, emulator) -> None:
    env = credentials(emulator)
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    people = workspace / "leads" / "people.yaml"
    people.write_text(re.sub(r"  - email: alan@example.com\n.*\n", "", people.read_text()))
    kept = invoke("apply", "--auto-approve", environ=env)
    assert "1 orphaned" in kept.stdout and "email:alan@example.com" in state_leads(workspace)
    forgot = invoke("apply", "--auto-approve", "--forget-orphans", environ=env)
    assert forgot.exit_code == 0, forgot.stderr
    assert "email:alan@example.com" not in state_leads(workspace)
    assert len(emulator.leads()) == 3, "Marketo keeps the lead"
