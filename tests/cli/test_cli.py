"""Whole-CLI behaviour through the injected environment (no subprocess), plus one real process check."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.cli import Environment, run
from reconcile.store.state import load_state
from conftest import v1_state

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_LEADS = ROOT / "leads"


@pytest.fixture
def workspace(make_workspace) -> Path:
    root = make_workspace()
    shutil.copytree(EXAMPLE_LEADS, root / "leads", dirs_exist_ok=True)
    return root


def test_example_leads_are_valid(workspace: Path) -> None:
    result = invoke("validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "7 leads in 4 files are valid."


def test_plan_of_examples_against_empty_state(workspace: Path) -> None:
    result = invoke("plan", "--detailed-exitcode")
    assert result.exit_code == 2
    assert result.stdout.rstrip().endswith(
        "Plan: 5 to create, 1 to adopt, 0 to update, 1 already absent, 0 orphaned, 0 unchanged; 1 list addition, "
        "0 removals; "
        "1 syncMultipleLeads call.")
    assert not (workspace / "reconcile.state.json").exists(), "plan never creates the state"


def test_plan_colour_only_on_a_tty_and_never_with_no_color(workspace: Path) -> None:
    assert "\x1b[" not in invoke("plan").stdout
    assert "\x1b[32m+ lead" in invoke("plan", tty=True).stdout
    assert "\x1b[" not in invoke("plan", tty=True, environ={"NO_COLOR": "1"}).stdout


def test_plan_json_and_markdown(workspace: Path) -> None:
    data = json.loads(invoke("plan", "--format", "json").stdout)
    assert data["format_version"] == 1
    assert data["summary"] == {"create": 5, "update": 0, "unchanged": 0, "orphaned": 0, "absent": 1, "adopt": 1,
                               "list_additions": 1, "list_removals": 0}
    assert len(data["actions"]) == 7 and data["calls"] == 1
    markdown = invoke("plan", "--format", "markdown").stdout
    assert "| Create | Adopt | Update |" in markdown and "| 5 | 1 | 0 | 0 | 0 | +1 / -0 | 1 |" in markdown
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
    state = v1_state({
        "email:jane@example.com": {"leadId": 7, "email": "jane@example.com", "foreignSysPersonId": None,
                                   "foreignSysType": None, "attributes": {"Title": "CTO"}, "syncedAt": None}},
                     serial=2, lineage="abc")
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
    assert "7 leads in 4 files are valid." in result.stdout


def test_state_rm_forgets_one_lead_and_bumps_the_serial(workspace: Path) -> None:
    leads = {key: {"leadId": n, "email": key[6:], "foreignSysPersonId": None, "foreignSysType": None,
                   "attributes": {}, "syncedAt": None}
             for n, key in enumerate(["email:a@example.com", "email:b@example.com"], start=1)}
    (workspace / "reconcile.state.json").write_text(json.dumps(
        v1_state(leads, serial=2, lineage="abc")))
    result = invoke("state", "rm", "email:A@example.com")
    assert result.exit_code == 0, result.stderr
    after = load_state(workspace / "reconcile.state.json")
    assert list(after.leads) == ["email:b@example.com"]
    assert after.serial == 3 and after.lineage == "abc"
    assert "migrated reconcile.state.json to state format 2" in result.stderr
    assert not (workspace / "reconcile.state.json.lock").exists(), "the lock is released"
    assert invoke("state", "rm", "email:nobody@example.com").exit_code == 64


# --- first impressions: version, help, the apply prompt, machine-readable errors ---


def test_version_prints_the_version(workspace: Path) -> None:
    from reconcile import __version__

    for args in (["--version"], ["--version", "plan"]):
        result = invoke(*args)
        assert (result.exit_code, result.stdout, result.stderr) == (0, f"reconcile {__version__}\n", "")


def test_bare_reconcile_prints_help_and_no_empty_error(workspace: Path) -> None:
    for args in ([], ["state"]):
        result = subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True,
                                cwd=workspace, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "Usage: reconcile" in result.stdout and "Commands" in result.stdout
        assert result.stderr == ""


def test_flags_show_no_value_placeholder_in_help(workspace: Path) -> None:
    for args in (["--help"], ["apply", "--help"], ["plan", "--help"]):
        result = subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True,
                                cwd=workspace, timeout=60, env={**os.environ, "COLUMNS": "120"})
        assert result.returncode == 0, result.stderr
        assert "<bool>" not in result.stdout, args
        assert re.search(r"--help\s+Show this message", result.stdout)
    assert re.search(r"--batch-size\s+<int>", result_of("apply", "--help"))  # options with a value keep theirs


def result_of(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "120"}).stdout


def test_answering_no_at_the_prompt_sends_nothing_and_exits_0(workspace: Path) -> None:
    result = invoke("apply", "--emulator", stdin="no\n", tty=True, environ={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith("Only 'yes' will be accepted: Apply cancelled; nothing was sent.\n")
    assert not (workspace / "reconcile.state.json").exists()


class _CtrlC(io.StringIO):
    def readline(self, *args):
        raise KeyboardInterrupt


def test_ctrl_c_at_the_prompt_says_apply_cancelled(workspace: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(stdout=out, stderr=err, stdin=_CtrlC(), environ={"NO_COLOR": "1"},
                              stdout_isatty=True, stdin_isatty=True)
    assert run(["apply", "--emulator"], environment) == 130
    assert out.getvalue().endswith("Only 'yes' will be accepted: \nApply cancelled; nothing was sent.\n")
    assert "error" not in err.getvalue()
    assert not (workspace / "reconcile.state.json").exists()


def test_errors_as_json_lines(workspace: Path) -> None:
    (workspace / "leads" / "broken.yaml").write_text("leads:\n  - email: nope\n  - leadId: 0\n")
    result = invoke("validate", "--format", "json")
    assert result.exit_code == 3 and result.stdout == ""
    assert [json.loads(line) for line in result.stderr.splitlines()] == [
        {"severity": "error", "file": "leads/broken.yaml", "line": 2, "path": "leads[0].email",
         "message": "'nope' is not an email address", "exit_code": 3},
        {"severity": "error", "file": "leads/broken.yaml", "line": 3, "path": "leads[1].leadId",
         "message": "leadId must be a positive integer below 2^31, not 0", "exit_code": 3}]
    (workspace / "leads" / "broken.yaml").unlink()
    assert json.loads(invoke("validate", "--format", "json").stdout) == {"valid": True, "leads": 7, "files": 4}
    usage = invoke("plan", "--nope", "--error-format", "json")
    assert usage.exit_code == 64
    assert json.loads(usage.stderr) == {"severity": "error", "file": None, "line": None, "path": None,
                                        "message": "No such option: --nope", "exit_code": 64}


def test_example_lead_ids_are_ids_the_emulator_never_hands_out() -> None:
    """Pasting an example must never update a lead the emulator created for someone else."""
    import yaml

    from reconcile.emulator import EmulatorConfig
    from reconcile.emulator.store import DEMO_LEADS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    examples = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)]
    examples += [yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(EXAMPLE_LEADS.rglob("*.yaml"))]
    ids = [lead["leadId"] for doc in examples if isinstance(doc, dict) for lead in doc.get("leads") or []
           if "leadId" in lead]
    assert ids, "the examples show adopting a lead by its ID"
    demo = {lead["id"] for lead in DEMO_LEADS}
    first_new = EmulatorConfig(encryption_key="k").first_lead_id
    for lead_id in ids:
        assert lead_id in demo or lead_id < first_new, lead_id
