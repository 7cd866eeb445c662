"""A lead the state knows by a weaker key gains a stronger one: applied end to end, then planned again.

The state key moves from `email:…` to `id:…` (or `fsp:…`); the next plan is empty, the state on disk
(format 2: a top file and shards) holds the lead once under its new key, and no orphan appears.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import invoke
from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID

from reconcile.store.state import load_state

# Enough leads that the state spans several shards, so a stale line in an untouched shard shows.
OTHERS = "".join(f"  - email: other{n}@example.com\n    attributes: {{FirstName: O{n}}}\n" for n in range(40))


def credentials(emulator) -> dict[str, str]:
    return {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
            "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}


def write_leads(workspace: Path, people: str) -> None:
    (workspace / "leads" / "people.yaml").write_text("leads:\n" + people + OTHERS)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "leads").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_json(env: dict) -> dict:
    result = invoke("plan", "--format", "json", environ=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("stronger", ["leadId", "foreignSysPersonId"])
def test_a_known_lead_that_gains_a_stronger_key_moves_to_it_and_plans_empty(workspace: Path, emulator,
                                                                             stronger: str) -> None:
    env = credentials(emulator)
    write_leads(workspace, "  - email: ada@example.com\n    attributes: {FirstName: Ada}\n")
    first = invoke("apply", "--auto-approve", environ=env)
    assert first.exit_code == 0, first.stderr
    top = json.loads((workspace / "reconcile.state.json").read_text())
    assert top["format_version"] == 2
    ada_id = load_state(workspace / "reconcile.state.json").leads["email:ada@example.com"].lead_id
    assert ada_id is not None

    if stronger == "leadId":
        new_key = f"id:{ada_id}"
        write_leads(workspace, f"  - leadId: {ada_id}\n    email: ada@example.com\n"
                               "    attributes: {FirstName: Ada}\n")
    else:
        new_key = "fsp:SFDC:A-1"
        write_leads(workspace, "  - foreignSysPersonId: A-1\n    foreignSysType: SFDC\n"
                               "    email: ada@example.com\n    attributes: {FirstName: Ada}\n")
    planned = plan_json(env)
    assert planned["summary"]["update"] == 1 and planned["summary"]["orphaned"] == 0, planned["summary"]

    second = invoke("apply", "--auto-approve", environ=env)
    assert second.exit_code == 0, second.stderr
    state = load_state(workspace / "reconcile.state.json")
    assert new_key in state.leads and "email:ada@example.com" not in state.leads
    assert state.leads[new_key].lead_id == ada_id
    assert len(state.leads) == 41
    assert len(emulator.leads()) == 41, "the lead was updated in Marketo, not created again"

    again = plan_json(env)
    assert again["summary"]["create"] == again["summary"]["update"] == 0, again["summary"]
    assert again["summary"]["orphaned"] == 0, again["actions"]
    assert again["summary"]["unchanged"] == 41
    assert invoke("plan", "--detailed-exitcode", environ=env).exit_code == 0


def test_a_lead_declared_by_leadid_whose_foreign_id_changed_keeps_its_marketo_lead(workspace: Path,
                                                                                     emulator) -> None:
    env = credentials(emulator)
    write_leads(workspace, "  - foreignSysPersonId: A-1\n    foreignSysType: SFDC\n"
                           "    email: ada@example.com\n    attributes: {FirstName: Ada}\n")
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    ada_id = load_state(workspace / "reconcile.state.json").leads["fsp:SFDC:A-1"].lead_id

    write_leads(workspace, f"  - leadId: {ada_id}\n    foreignSysPersonId: A-2\n    foreignSysType: SFDC\n"
                           "    email: ada@example.com\n    attributes: {FirstName: Ada}\n")
    applied = invoke("apply", "--auto-approve", environ=env)
    assert applied.exit_code == 0, applied.stderr
    assert "0 created, 1 updated" in applied.stdout
    in_marketo = {lead["id"]: lead for lead in emulator.leads()}[ada_id]
    assert in_marketo["foreignSysPersonId"] == "A-2"
    assert len(emulator.leads()) == 41
    state = load_state(workspace / "reconcile.state.json")
    assert f"id:{ada_id}" in state.leads and "fsp:SFDC:A-1" not in state.leads
    assert state.leads[f"id:{ada_id}"].foreign_sys_person_id == "A-2"
    again = plan_json(env)
    assert again["summary"]["unchanged"] == 41 and again["summary"]["orphaned"] == 0, again["summary"]
