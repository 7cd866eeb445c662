"""Tombstones (`deleted: true`) and --delete-orphans: planned as `- delete lead ...`, refused where they
cannot be applied, asked about again unless --allow-delete, deleted through REST Delete Leads, and
forgotten by the state, after which a tombstone is "already absent"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import invoke
from conftest import emulator_environ as env_for

LEADS = """leads:
  - email: ada@example.com
    attributes: {Company: A}
  - email: gone@example.com
    attributes: {Company: G}
"""
TOMBSTONE = """leads:
  - email: ada@example.com
    attributes: {Company: A}
  - email: gone@example.com
    deleted: true
"""


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({"people.yaml": LEADS})


@pytest.fixture
def applied(workspace, emulator) -> dict[str, int]:
    """Both leads created and recorded; the lead file then declares gone@example.com deleted."""
    assert invoke("apply", "--auto-approve", environ=env_for(emulator)).exit_code == 0
    (workspace / "leads" / "people.yaml").write_text(TOMBSTONE)
    return {lead["email"]: lead["id"] for lead in emulator.leads()}


def emails(emulator) -> set[str]:
    return {lead["email"] for lead in emulator.leads()}


def test_a_tombstone_holds_keys_and_nothing_else(workspace) -> None:
    (workspace / "leads" / "people.yaml").write_text(TOMBSTONE + "    lists: [VIP]\n")
    result = invoke("validate")
    assert result.exit_code == 3
    assert "leads/people.yaml:6" in result.stderr and "tombstone" in result.stderr and "'lists'" in result.stderr


def test_the_plan_shows_the_deletion_counted_apart_and_first_in_markdown(applied, emulator) -> None:
    env = env_for(emulator)
    text = invoke("plan", environ=env).stdout
    assert f"- delete lead {applied['gone@example.com']} (gone@example.com, leads/people.yaml:4)" in text
    assert "Plan: 0 to create, 0 to update, 1 to delete, 0 orphaned, 1 unchanged;" in text
    assert json.loads(invoke("plan", "--format", "json", environ=env).stdout)["summary"]["delete"] == 1
    markdown = invoke("plan", "--format", "markdown", environ=env).stdout
    assert markdown.index("> [!WARNING]") < markdown.index("| Create")
    assert "**1 lead will be deleted from Marketo.**" in markdown


def test_without_a_tty_or_allow_delete_nothing_is_sent_even_auto_approved(applied, emulator) -> None:
    calls = len(emulator.calls)
    result = invoke("apply", "--auto-approve", environ=env_for(emulator))
    assert result.exit_code == 64 and "--allow-delete" in result.stderr
    assert "gone@example.com" in emails(emulator)
    assert not [call for call in emulator.calls[calls:] if "delete" in json.dumps(call, default=str).lower()]


def test_declining_at_the_second_question_deletes_nothing(applied, emulator) -> None:
    result = invoke("apply", "--auto-approve", environ=env_for(emulator), tty=True, stdin="no\n")
    assert result.exit_code == 0 and "Delete 1 lead(s) from Marketo?" in result.stdout
    assert "gone@example.com" in emails(emulator)


def test_allowed_the_lead_is_deleted_forgotten_and_then_already_absent(workspace, applied, emulator) -> None:
    env = env_for(emulator)
    result = invoke("apply", "--auto-approve", "--allow-delete", environ=env)
    assert result.exit_code == 0, result.stderr
    assert emails(emulator) == {"ada@example.com"}
    assert "gone@example.com" not in (workspace / "reconcile.state.json").read_text() + "".join(
        p.read_text() for p in (workspace / "reconcile.state.d").glob("*"))
    again = invoke("plan", "--detailed-exitcode", environ=env)
    assert again.exit_code == 0 and "email:gone@example.com (leads/people.yaml:4) is already absent" in again.stdout


def test_a_lead_marketo_no_longer_has_is_forgotten_as_deleted(applied, emulator) -> None:
    import requests

    gone = requests.delete(f"{emulator.rest_endpoint}/_emulator/leads/{applied['gone@example.com']}",
                           timeout=10)
    assert gone.status_code == 200 and "gone@example.com" not in emails(emulator)
    result = invoke("apply", "--auto-approve", "--allow-delete", environ=env_for(emulator))
    assert result.exit_code == 0, result.stderr
    assert invoke("plan", "--detailed-exitcode", environ=env_for(emulator)).exit_code == 0


def test_soap_has_no_delete_call_exit_3_at_plan_time(applied, emulator) -> None:
    result = invoke("plan", environ=env_for(emulator, "soap"))
    assert result.exit_code == 3
    assert "leads/people.yaml:4" in result.stderr and "SOAP has no call that deletes a lead" in result.stderr


def test_delete_orphans_refuses_beyond_max_deletes_and_lists_them(workspace, emulator) -> None:
    env = env_for(emulator)
    assert invoke("apply", "--auto-approve", environ=env).exit_code == 0
    (workspace / "leads" / "people.yaml").write_text(LEADS.split("  - email: gone")[0])
    refused = invoke("apply", "--auto-approve", "--allow-delete", "--delete-orphans", environ=env)
    assert refused.exit_code == 64 and "email:gone@example.com" in refused.stderr
    assert "gone@example.com" in emails(emulator)
    done = invoke("apply", "--auto-approve", "--allow-delete", "--delete-orphans", "--max-deletes", "1", environ=env)
    assert done.exit_code == 0, done.stderr
    assert emails(emulator) == {"ada@example.com"}
    assert invoke("plan", "--detailed-exitcode", environ=env).exit_code == 0
