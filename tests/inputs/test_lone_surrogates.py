"""A lone surrogate (U+D800–U+DFFF alone) is not a character: no UTF-8 file, state or request can hold it.

From a lead file (a YAML escape such as "\\ud800") it is invalid input, refused by validate and plan
with exit 3 and its file:line before anything is written. From a server during `import` (JSON can
escape one) the value is left out of the lead file, as other values no lead file can carry are, so
the lead file and the state are written whole and plan finds nothing to do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.adopt.importer import ImportSettings, run_import
from reconcile.adopt.request import ImportRequest
from reconcile.core.model import State
from reconcile.inputs.fields import FieldCatalog
from reconcile.inputs.leadfiles import parse_lead_file, parse_lead_file_reference, yaml_parsers
from reconcile.store.state import load_state
from rest_fake import FakeMarketo, describe_entries
from rest_fake import make_client

LEAD_FILES = {
    "an attribute value": ('leads:\n  - email: a@example.com\n    attributes:\n      FirstName: "\\ud800"\n', 4),
    "the low half alone": ('leads:\n  - email: a@example.com\n    attributes: {LastName: "x\\udfffy"}\n', 3),
    "a pair written as two escapes": ('leads:\n  - email: b@example.com\n'
                                      '    attributes:\n      Title: "\\ud83d\\ude00"\n', 4),
    "an email": ('leads:\n  - email: "a\\ud800@example.com"\n', 2),
    "an attribute name": ('leads:\n  - email: a@example.com\n    attributes: {"First\\udc00": x}\n', 3),
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "leads").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", sorted(LEAD_FILES))
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_a_lone_surrogate_in_a_lead_file_is_invalid_input(workspace: Path, name: str, command: str) -> None:
    text, line = LEAD_FILES[name]
    (workspace / "leads" / "a.yaml").write_text(text)
    args = ("apply", "--emulator", "--auto-approve") if command == "apply" else (command,)
    result = invoke(*args)
    assert result.exit_code == 3, result.stdout + result.stderr
    message = result.stderr.splitlines()[-1]
    assert message.startswith(f"error: leads/a.yaml:{line}: ") and "surrogate" in message, message
    # apply --emulator keeps the emulator's database outside the lead files and the state, in .reconcile/
    assert sorted(p.name for p in workspace.iterdir()) in (["leads"], [".reconcile", "leads"]), "nothing is written"
    if command != "apply":
        assert result.stderr.count("\n") == 1


def test_both_parsers_refuse_it() -> None:
    text, line = LEAD_FILES["an attribute value"]
    for parse in (lambda: parse_lead_file(text, "a.yaml", yaml_parsers(libyaml=False)),
                  lambda: parse_lead_file(text, "a.yaml"),
                  lambda: parse_lead_file_reference(text, "a.yaml", yaml_parsers(libyaml=False))):
        with pytest.raises(Exception, match="surrogate") as refused:
            parse()
        assert refused.value.location.line == line


def test_escapes_of_real_characters_still_read() -> None:
    text = 'leads:\n  - email: a@example.com\n    attributes: {FirstName: "Zo\\u00eb \\U0001F600"}\n'
    assert parse_lead_file(text, "a.yaml").document["leads"][0]["attributes"]["FirstName"] == "Zoë 😀"


def test_a_lone_surrogate_from_the_server_during_import_is_left_out_before_anything_is_written(
        workspace: Path) -> None:
    fake = FakeMarketo()  # answers JSON with escapes: "\ud800" arrives as a lone surrogate
    fake.leads[1001] = {"id": 1001, "email": "ada@example.com", "firstName": "\ud800", "lastName": "Lovelace"}
    fake.leads[1002] = {"id": 1002, "email": "b\udfff@example.com", "lastName": "Hopper"}
    out = workspace / "leads" / "imported.yaml"
    state_path = workspace / "reconcile.state.json"
    settings = ImportSettings(request=ImportRequest(ids=(1001, 1002), emails=()), fields=["FirstName", "LastName"],
                              out=out, state_path=state_path, instance="fake", concurrency=1)
    result = run_import(make_client(fake), lambda: FieldCatalog(describe_entries()), settings, [],
                        State(lineage="0c1d2e3f-0000-4000-8000-000000000000", serial=0, leads={}))
    problems = "\n".join(result.adopted.problems)
    assert "lead 1001: FirstName" in problems and "lead 1002: its email" in problems, problems

    written = out.read_text(encoding="utf-8")
    ada = written.split("leadId: 1001")[1].split("- leadId")[0]
    assert "Lovelace" in ada and "FirstName" not in ada, written
    state = load_state(state_path)
    assert set(state.leads) == {"id:1001", "id:1002"}
    assert "FirstName" not in state.leads["id:1001"].attributes and state.leads["id:1002"].email is None
    plan = invoke("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    assert "0 to create, 0 to update, 0 orphaned, 2 unchanged" in plan.stdout
