"""One Marketo lead, declared once: two declarations that the state's lead IDs resolve to one Marketo
lead are refused at plan time (and by apply, before sending anything), exit 3, naming both places
and the lead ID. A lead that only gains a stronger key, or gives its email up, is not a second one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.core.declared_once import declared_twice
from reconcile.core.model import Lead, State, StateLead
from reconcile.errors import Location
from conftest import v1_state


def record(lead_id: int, email: str | None = None, foreign_id: str | None = None,
           foreign_type: str | None = None) -> dict:
    return {"leadId": lead_id, "email": email, "foreignSysPersonId": foreign_id,
            "foreignSysType": foreign_type if foreign_id else None, "syncedAt": None, "attributes": {}}


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace()


def write(workspace: Path, state_leads: dict, files: dict[str, str]) -> None:
    state = v1_state(state_leads, serial=1)
    (workspace / "reconcile.state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    for name, text in files.items():
        (workspace / "leads" / name).write_text(text)


# (state records, lead files, the one error line)
CONFLICTS = {
    "foreign ID in the state, leadId declared": (
        {"fsp:SFDC:0042": record(1090241, "jane@example.com", "0042", "SFDC")},
        {"a.yaml": "leads:\n  - foreignSysPersonId: \"0042\"\n    foreignSysType: SFDC\n",
         "b.yaml": "leads:\n  - leadId: 1090241\n    attributes: {Title: CTO}\n"},
        "leads/b.yaml:2: Marketo lead 1090241 is declared twice: as id:1090241 here (its leadId) and as "
        "fsp:SFDC:0042 at leads/a.yaml:2 (the state records fsp:SFDC:0042 as lead 1090241); declare each "
        "Marketo lead once"),
    "email in the state, leadId declared": (
        {"email:jane@example.com": record(1090241, "jane@example.com")},
        {"a.yaml": "leads:\n  - email: Jane@Example.com\n",
         "b.yaml": "leads:\n  - leadId: 1090241\n"},
        "leads/b.yaml:2: Marketo lead 1090241 is declared twice: as id:1090241 here (its leadId) and as "
        "email:jane@example.com at leads/a.yaml:2 (the state records email:jane@example.com as lead 1090241); "
        "declare each Marketo lead once"),
    "foreign ID lead's email declared on its own": (
        {"fsp:CUSTOM:7": record(1090241, "jane@example.com", "7", "CUSTOM")},
        {"a.yaml": "leads:\n  - foreignSysPersonId: \"7\"\n    email: jane@example.com\n",
         "b.yaml": "leads:\n  - email: jane@example.com\n    attributes: {Title: CTO}\n"},
        "leads/b.yaml:2: Marketo lead 1090241 is declared twice: as email:jane@example.com here (the state "
        "records fsp:CUSTOM:7 as lead 1090241) and as fsp:CUSTOM:7 at leads/a.yaml:2 (the state records "
        "fsp:CUSTOM:7 as lead 1090241); declare each Marketo lead once"),
    "foreign ID lead's email declared on its own, in other letter case": (
        {"fsp:CUSTOM:7": record(1090241, "jane@example.com", "7", "CUSTOM")},
        {"a.yaml": "leads:\n  - foreignSysPersonId: \"7\"\n    email: jane@example.com\n",
         "b.yaml": "leads:\n  - email: Jane@EXAMPLE.com\n    attributes: {Title: CTO}\n"},
        "leads/b.yaml:2: Marketo lead 1090241 is declared twice: as email:jane@example.com here (the state "
        "records fsp:CUSTOM:7 as lead 1090241) and as fsp:CUSTOM:7 at leads/a.yaml:2 (the state records "
        "fsp:CUSTOM:7 as lead 1090241); declare each Marketo lead once"),
    "leadId declared, and again with an email the state knows": (
        {"email:jane@example.com": record(1090241, "jane@example.com")},
        {"a.yaml": "leads:\n  - leadId: 1090241\n    email: jane@example.com\n  - email: jane@example.com\n"},
        "leads/a.yaml:4: Marketo lead 1090241 is declared twice: as email:jane@example.com here (the state "
        "records email:jane@example.com as lead 1090241) and as id:1090241 at leads/a.yaml:2 (its leadId); "
        "declare each Marketo lead once"),
}


@pytest.mark.parametrize("name", sorted(CONFLICTS))
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_one_marketo_lead_declared_twice_is_refused(name: str, command: str, workspace: Path) -> None:
    state_leads, files, error = CONFLICTS[name]
    write(workspace, state_leads, files)
    before = (workspace / "reconcile.state.json").read_bytes()
    args = ("apply", "--emulator", "--auto-approve") if command == "apply" else ("plan",)
    result = invoke(*args)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.splitlines()[-1] == f"error: {error}"
    assert result.stdout == "", "refused before a plan is shown, let alone applied"
    assert (workspace / "reconcile.state.json").read_bytes() == before


NOT_CONFLICTS = {
    "a lead gains its leadId": (
        {"email:jane@example.com": record(1090241, "jane@example.com")},
        {"a.yaml": "leads:\n  - leadId: 1090241\n    email: jane@example.com\n"}),
    "a foreign-ID lead changes its email, and the old address becomes a new lead": (
        {"fsp:CUSTOM:7": record(1090241, "jane@example.com", "7", "CUSTOM")},
        {"a.yaml": "leads:\n  - foreignSysPersonId: \"7\"\n    email: jane.doe@example.com\n",
         "b.yaml": "leads:\n  - email: jane@example.com\n"}),
    "a new foreign ID with an email the state knows (Marketo keys it by the foreign ID)": (
        {"email:jane@example.com": record(1090241, "jane@example.com")},
        {"a.yaml": "leads:\n  - email: jane@example.com\n"
                   "  - foreignSysPersonId: \"8\"\n    email: jane@example.com\n"}),
    "a lead known by its own key, its email shared by another lead (apply sends its ID, no dedup)": (
        {"email:jane@example.com": record(1090241, "jane@example.com"),
         "fsp:CUSTOM:7": record(1090299, "jane@example.com", "7")},
        {"a.yaml": "leads:\n  - email: jane@example.com\n  - foreignSysPersonId: \"7\"\n"}),
    "two leads the state knows apart": (
        {"email:jane@example.com": record(1090241, "jane@example.com"), "fsp:CUSTOM:7": record(1090299, None, "7")},
        {"a.yaml": "leads:\n  - email: jane@example.com\n  - foreignSysPersonId: \"7\"\n"}),
}


@pytest.mark.parametrize("name", sorted(NOT_CONFLICTS))
def test_one_declaration_per_marketo_lead_plans(name: str, workspace: Path) -> None:
    state_leads, files = NOT_CONFLICTS[name]
    write(workspace, state_leads, files)
    result = invoke("plan")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""


def test_every_golden_case_has_each_lead_declared_once() -> None:
    from reconcile.inputs.validate import load_desired
    from reconcile.store.state import parse_state

    cases = sorted(p for p in (Path(__file__).parents[1] / "cases").iterdir() if (p / "leads").is_dir())
    assert cases
    for case in cases:
        state_file = case / "reconcile.state.json"
        state = parse_state(state_file.read_bytes(), "s") if state_file.exists() else State("l", 0, {})
        assert declared_twice(load_desired(case / "leads").leads, state) == [], case.name


def test_all_conflicts_are_reported_in_source_order() -> None:
    state = State("l", 1, {"email:a@example.com": StateLead(5, "a@example.com", None, None, {}),
                           "email:b@example.com": StateLead(6, "b@example.com", None, None, {})})
    desired = [Lead(Location("leads/z.yaml", 9), lead_id=6), Lead(Location("leads/a.yaml", 2), email="a@example.com"),
               Lead(Location("leads/b.yaml", 2), email="b@example.com"), Lead(Location("leads/z.yaml", 3), lead_id=5)]
    errors = declared_twice(desired, state)
    assert [(str(e.location), e.message.split(":")[0]) for e in errors] == [
        ("leads/z.yaml:3", "Marketo lead 5 is declared twice"), ("leads/z.yaml:9", "Marketo lead 6 is declared twice")]


def test_two_records_the_state_gives_one_lead_id_are_two_declarations_of_it() -> None:
    """After Marketo merged two leads, the state may record both under one ID; declaring both is an error."""
    state = State("l", 1, {"email:a@example.com": StateLead(5, "a@example.com", None, None, {}),
                           "fsp:CUSTOM:7": StateLead(5, None, "7", "CUSTOM", {})})
    desired = [Lead(Location("leads/a.yaml", 2), email="a@example.com"),
               Lead(Location("leads/a.yaml", 3), foreign_sys_person_id="7")]
    assert [e.lines() for e in declared_twice(desired, state)] == [[
        "leads/a.yaml:3: Marketo lead 5 is declared twice: as fsp:CUSTOM:7 here (the state records fsp:CUSTOM:7 as "
        "lead 5) and as email:a@example.com at leads/a.yaml:2 (the state records email:a@example.com as lead 5); "
        "declare each Marketo lead once"]]
    assert declared_twice(desired[:1], state) == []
