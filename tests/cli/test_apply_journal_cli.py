"""A leftover journal through the CLI: plan shows what apply will recover and writes nothing; a journal
that git tracks is refused; a failed apply never calls itself complete."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.core.model import State, StateLead
from reconcile.store.journal import Journal, JournalEntry, ResultEntry, journal_path
from reconcile.store.state import load_state

# an endpoint nothing listens on: these tests must fail before anything is sent
OFFLINE = {"MARKETO_SOAP_ENDPOINT": "http://127.0.0.1:9/soap/mktows/2_1", "MARKETO_USER_ID": "u",
           "MARKETO_ENCRYPTION_KEY": "k" * 20}


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "a.yaml": "leads:\n  - email: new@example.com\n    attributes: {FirstName: N}\n",
    })


def leave_journal(workspace: Path, lead_id: int = 1090300) -> bytes:
    """The journal an apply killed after its first answer leaves (its state file was never written)."""
    state_path = workspace / "reconcile.state.json"
    lead = StateLead(lead_id=lead_id, email="new@example.com", foreign_sys_person_id=None, foreign_sys_type=None,
                     attributes={"FirstName": "N"}, synced_at="2026-01-01T00:00:00Z")
    with Journal.create(state_path, State("lin-1", 0, {}), dedup_enabled=True, started="2026-01-01T00:00:00Z") as j:
        j.inflight(1, [JournalEntry("email:new@example.com", None, "create", email="new@example.com")], True)
        j.result(1, [ResultEntry("email:new@example.com", None, "CREATED", lead_id, None, lead)])
    return journal_path(state_path).read_bytes()


def test_plan_recovers_a_leftover_journal_read_only_and_shows_it(workspace: Path) -> None:
    before = leave_journal(workspace)
    assert "1 to create" in _plan_without_journal(workspace)

    result = invoke("plan", "--detailed-exitcode")
    assert result.exit_code == 0, result.stderr
    head, _, plan = result.stdout.partition("\n\n")
    assert "reconcile.state.json.journal" in head and "interrupted apply" in head
    assert "  + email:new@example.com: recorded with leadId 1090300" in head.splitlines()
    assert "No changes." in plan  # planned from the recovered state, as apply will see it
    assert journal_path(workspace / "reconcile.state.json").read_bytes() == before
    assert not (workspace / "reconcile.state.json").exists()

    as_json = invoke("plan", "--format", "json")
    assert json.loads(as_json.stdout)["summary"]["create"] == 0
    assert "recorded with leadId 1090300" in as_json.stderr
    markdown = invoke("plan", "--format", "markdown").stdout
    assert "recorded with leadId 1090300" in markdown.split("### reconcile plan")[0]


def _plan_without_journal(workspace: Path) -> str:
    path = journal_path(workspace / "reconcile.state.json")
    saved = path.read_bytes()
    path.unlink()
    try:
        return invoke("plan").stdout
    finally:
        path.write_bytes(saved)


def test_a_saved_plan_made_with_a_leftover_journal_applies_after_the_recovery(workspace: Path, emulator) -> None:
    from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID

    leave_journal(workspace)
    (workspace / "leads" / "b.yaml").write_text("leads:\n  - email: other@example.com\n")
    assert invoke("plan", "--out", "tfplan.json").exit_code == 0
    env = {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
           "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}
    applied = invoke("apply", "tfplan.json", environ=env)
    assert applied.exit_code == 0, applied.stderr
    assert "recovered the journal" in applied.stderr
    state = load_state(workspace / "reconcile.state.json")
    assert sorted(state.leads) == ["email:new@example.com", "email:other@example.com"]


def _git(workspace: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull}
    subprocess.run(["git", *args], cwd=workspace, env=env, check=True, capture_output=True)


def test_a_journal_tracked_by_git_is_never_replayed(workspace: Path) -> None:
    before = leave_journal(workspace)
    _git(workspace, "init", "-q")
    _git(workspace, "add", "reconcile.state.json.journal")
    for args in (["apply", "--auto-approve"], ["plan"]):
        result = invoke(*args, environ=OFFLINE)
        assert result.exit_code == 3, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: reconcile.state.json.journal: ")
        assert "tracked by git" in lines[0]
    assert journal_path(workspace / "reconcile.state.json").read_bytes() == before
    assert not (workspace / "reconcile.state.json").exists()


def test_an_untracked_journal_in_a_repository_is_recovered(workspace: Path) -> None:
    leave_journal(workspace)
    _git(workspace, "init", "-q")
    _git(workspace, "add", "leads")
    result = invoke("plan")
    assert result.exit_code == 0, result.stderr
    assert "recorded with leadId 1090300" in result.stdout


def test_a_failed_apply_says_failed_not_complete(workspace: Path, emulator) -> None:
    from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID

    (workspace / "leads" / "a.yaml").write_text(
        "leads:\n  - email: ok@example.com\n  - email: bad@example.com\n    attributes: {NoSuchField: x}\n")
    env = {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
           "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY}
    result = invoke("apply", "--auto-approve", environ=env)
    assert result.exit_code == 5, result.stderr
    assert "Apply complete" not in result.stdout
    assert "Apply failed: 1 created, 0 updated, 1 failed;" in result.stdout


def test_progress_lines_count_adoptions_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "leads", tmp_path / "leads")
    monkeypatch.chdir(tmp_path)
    result = invoke("apply", "--emulator", "--auto-approve", "--batch-size", "1", "--concurrency", "1")
    assert result.exit_code == 0, result.stderr
    calls = [line for line in result.stderr.splitlines() if line.startswith("call ")]
    assert len(calls) == 6 and sum(", 1 adopted," in line for line in calls) == 1
    assert "Apply complete: 5 created, 0 updated, 1 adopted, 0 failed" in result.stdout
