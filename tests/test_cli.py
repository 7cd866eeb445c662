"""Whole-CLI behaviour through the injected environment (no subprocess), plus one real process check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clirunner import invoke

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_LEADS = ROOT / "leads"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(EXAMPLE_LEADS, tmp_path / "leads")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_example_leads_are_valid(workspace: Path) -> None:
    result = invoke("validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "6 leads in 4 files are valid."


def test_plan_of_examples_against_empty_state(workspace: Path) -> None:
    result = invoke("plan", "--detailed-exitcode")
    assert result.exit_code == 2
    assert result.stdout.rstrip().endswith(
        "Plan: 5 to create, 1 to adopt, 0 to update, 0 orphaned, 0 unchanged; 1 syncMultipleLeads call.")
    assert not (workspace / "reconcile.state.json").exists(), "plan never creates the state"


def test_plan_colour_only_on_a_tty_and_never_with_no_color(workspace: Path) -> None:
    assert "\x1b[" not in invoke("plan").stdout
    assert "\x1b[32m+ lead" in invoke("plan", tty=True).stdout
    assert "\x1b[" not in invoke("plan", tty=True, environ={"NO_COLOR": "1"}).stdout


def test_plan_json_and_markdown(workspace: Path) -> None:
    data = json.loads(invoke("plan", "--format", "json").stdout)
    assert data["format_version"] == 1
    assert data["summary"] == {"create": 5, "update": 0, "unchanged": 0, "orphaned": 0, "adopt": 1}
    assert len(data["actions"]) == 6 and data["calls"] == 1
    markdown = invoke("plan", "--format", "markdown").stdout
    assert "| Create | Adopt | Update |" in markdown and "| 5 | 1 | 0 | 0 | 0 | 1 |" in markdown
    assert "<details><summary>5 to create</summary>" in markdown
    assert "<details><summary>1 to adopt</summary>" in markdown


def test_plan_out_records_input_fingerprints(workspace: Path) -> None:
    result = invoke("plan", "--out", "tfplan.json")
    assert result.exit_code == 0
    saved = json.loads((workspace / "tfplan.json").read_text())
    assert saved["kind"] == "reconcile-plan"
    inputs = saved["inputs"]
    assert inputs["state_serial"] == 0 and inputs["state_hash"].startswith("sha256:")
    assert inputs["lead_files_hash"].startswith("sha256:") and len(inputs["lead_files"]) == 4
    assert saved["plan"]["summary"]["create"] == 5 and saved["plan"]["summary"]["adopt"] == 1


def test_usage_errors_exit_64(workspace: Path) -> None:
    for args in (["plan", "--format", "yaml"], ["plan", "--nope"], ["frobnicate"], ["state", "show"]):
        result = invoke(*args)
        assert result.exit_code == 64, (args, result.stderr)
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr


def test_missing_leads_directory_is_invalid_input(workspace: Path) -> None:
    result = invoke("plan", "--leads", "nowhere")
    assert result.exit_code == 3
    assert result.stderr == "error: nowhere: lead directory not found: nowhere\n"


def test_debug_shows_traceback_anywhere_on_the_command_line(workspace: Path) -> None:
    (workspace / "leads" / "broken.yaml").write_text("leads:\n  - email: nope\n")
    plain = invoke("plan")
    assert plain.exit_code == 3 and "Traceback" not in plain.stderr
    for args in (["--debug", "plan"], ["plan", "--debug"]):
        debug = invoke(*args)
        assert debug.exit_code == 3
        assert "Traceback" in debug.stderr
        assert "error: leads/broken.yaml:2: leads[0].email: 'nope' is not an email address" in debug.stderr


def test_all_errors_reported_at_once_in_source_order(workspace: Path) -> None:
    (workspace / "leads" / "broken.yaml").write_text(
        "leads:\n  - email: nope\n  - leadId: 0\n  - email: fine@example.com\n  - email: FINE@example.com\n")
    result = invoke("validate")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: leads/broken.yaml:2: leads[0].email: 'nope' is not an email address",
        "error: leads/broken.yaml:3: leads[1].leadId: leadId must be a positive integer below 2^31, not 0",
        "error: leads/broken.yaml:5: duplicate lead email:fine@example.com: already declared at leads/broken.yaml:4",
    ]


def test_duplicate_identity_across_files_names_both(workspace: Path) -> None:
    (workspace / "leads" / "zz.yaml").write_text("leads:\n  - email: EM1000@etestd.marketo.net\n")
    result = invoke("validate")
    assert result.exit_code == 3
    assert result.stderr == ("error: leads/zz.yaml:2: duplicate lead email:em1000@etestd.marketo.net: "
                             "already declared at leads/customers.yaml:4\n")


def test_state_list_and_show(workspace: Path) -> None:
    state = {"format_version": 1, "lineage": "abc", "serial": 2, "leads": {
        "email:jane@example.com": {"leadId": 7, "email": "jane@example.com", "foreignSysPersonId": None,
                                   "foreignSysType": None, "attributes": {"Title": "CTO"}, "syncedAt": None}}}
    (workspace / "reconcile.state.json").write_text(json.dumps(state))
    assert invoke("state", "list").stdout == "email:jane@example.com\t7\n"
    listed = json.loads(invoke("state", "list", "--json").stdout)
    assert listed["email:jane@example.com"]["attributes"] == {"Title": "CTO"}
    shown = invoke("state", "show", "email:JANE@example.com")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["leadId"] == 7
    missing = invoke("state", "show", "email:nobody@example.com")
    assert missing.exit_code == 64 and "no lead 'email:nobody@example.com'" in missing.stderr


def test_python_dash_m_runs_the_cli(workspace: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "reconcile", "validate"], capture_output=True, text=True,
                            cwd=workspace, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "6 leads in 4 files are valid." in result.stdout


def test_state_rm_forgets_one_lead_and_bumps_the_serial(workspace: Path) -> None:
    leads = {key: {"leadId": n, "email": key[6:], "foreignSysPersonId": None, "foreignSysType": None,
                   "attributes": {}, "syncedAt": None}
             for n, key in enumerate(["email:a@example.com", "email:b@example.com"], start=1)}
    (workspace / "reconcile.state.json").write_text(json.dumps(
        {"format_version": 1, "lineage": "abc", "serial": 2, "leads": leads}))
    result = invoke("state", "rm", "email:A@example.com")
    assert result.exit_code == 0, result.stderr
    after = json.loads((workspace / "reconcile.state.json").read_text())
    assert list(after["leads"]) == ["email:b@example.com"]
    assert after["serial"] == 3 and after["lineage"] == "abc"
    assert not (workspace / "reconcile.state.json.lock").exists(), "the lock is released"
    assert invoke("state", "rm", "email:nobody@example.com").exit_code == 64
