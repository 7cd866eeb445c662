"""The workflow files and the composite action, read without running them: actions pinned to full
commit SHAs with their version, least-privilege permissions, no expressions or secrets spliced into
scripts, errors read as JSON through the CLI, the triggers, concurrency and loop protection, the
pre-commit hook, and the local runner reading their `${{ }}` expressions as GitHub does.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from workflow_expressions import condition_holds, evaluate, interpolate
from workflow_repos import ACTION, APPLY_WORKFLOW, LEADS, PLAN_WORKFLOW, ROOT, WORKFLOWS

# --------------------------------------------------------------------------------------------------
# Static checks of the workflow files


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _all_steps():
    for path in sorted(WORKFLOWS.glob("*.yml")) + [ACTION]:
        data = _load(path)
        if path == ACTION:
            yield path, data["runs"]["steps"]
        else:
            for job in data["jobs"].values():
                yield path, job["steps"]


def test_actions_are_pinned_to_full_commit_shas_with_the_version_in_a_comment():
    seen = 0
    for path in sorted(WORKFLOWS.glob("*.yml")) + [ACTION]:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if not match or match[1].startswith("./"):
                continue
            seen += 1
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", match[1]), f"{path.name}: {line.strip()}"
            assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", match[2]), f"{path.name}: no version comment: {line.strip()}"
    assert seen >= 4


def test_least_privilege_permissions_and_no_expressions_in_scripts():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        data = _load(path)
        assert data["permissions"] == {}, f"{path.name}: the workflow grants nothing by default"
        for job in data["jobs"].values():
            assert "permissions" in job, f"{path.name}: every job says what it needs"
    assert _load(PLAN_WORKFLOW)["jobs"]["plan"]["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert _load(APPLY_WORKFLOW)["jobs"]["apply"]["permissions"] == {"contents": "write"}
    for path, steps in _all_steps():
        for step in steps:
            # untrusted text and secrets reach scripts through env:, never spliced into the script
            assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}"
            if "run" in step:
                assert "set -x" not in step["run"]
    text = APPLY_WORKFLOW.read_text() + PLAN_WORKFLOW.read_text() + ACTION.read_text()
    assert set(re.findall(r"secrets\.(\w+)", text)) == {"MARKETO_SOAP_ENDPOINT", "MARKETO_USER_ID",
                                                       "MARKETO_ENCRYPTION_KEY", "MARKETO_CLIENT_ID",
                                                       "MARKETO_CLIENT_SECRET", "MARKETO_REST_ENDPOINT",
                                                       "MARKETO_IDENTITY_ENDPOINT"}
    assert "secrets." not in PLAN_WORKFLOW.read_text()


def test_steps_read_errors_as_json_and_run_the_ci_glue_through_the_cli():
    runs = [step["run"] for _, steps in _all_steps() for step in steps if "run" in step]
    script = "\n".join(runs)
    # every reconcile command whose errors a later step reads prints them as JSON lines
    for command in ("validate", "plan", "apply", "ci check-tracked"):
        calls = re.findall(rf"reconcile (?:--[\w-]+ \w+ )*{command}\b[^\n]*", script)
        assert calls, command
        assert all("--error-format json" in call for call in calls), calls
    assert "reconcile.ci.github" not in script and "python -m reconcile" not in script
    assert script.count("reconcile ci annotate") == 5  # check, validate, plan, apply, the drift plan


def test_triggers_concurrency_and_loop_protection():
    plan, apply = _load(PLAN_WORKFLOW), _load(APPLY_WORKFLOW)
    # PyYAML reads the key `on` as True
    paths = ["leads/**", "schemas/**", "reconcile.state.json", "reconcile.state.d/**", "**.json.journal", "**.json.lock",
             ".reconcile/**", "**/.reconcile/**"]
    # a pull request that adds a journal, a lock or a .reconcile file, anywhere, runs the plan job (which refuses it)
    for added in ("reconcile.state.json.journal", "reconcile.state.json.lock", "team/a/reconcile.state.json.lock",
                  ".reconcile/cache/x.entry", "team/.reconcile/describe/host.json"):
        assert any(fnmatch.fnmatchcase(added, pattern) for pattern in paths), added
    assert plan[True]["pull_request"]["paths"] == paths
    assert apply[True]["push"] == {"branches": ["main"], "paths": paths}
    assert apply["concurrency"] == {"group": "reconcile-apply", "cancel-in-progress": False}
    assert plan["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in plan["concurrency"]["group"]
    job = apply["jobs"]["apply"]
    github = {"ref": "refs/heads/main", "actor": "octocat"}
    assert condition_holds(job["if"], {"github": github}, failed=False)
    assert not condition_holds(job["if"], {"github": {**github, "actor": "github-actions[bot]"}}, failed=False)
    assert not condition_holds(job["if"], {"github": {**github, "ref": "refs/heads/feature"}}, failed=False)
    checkout = job["steps"][0]
    assert checkout["with"]["persist-credentials"] is False and checkout["with"]["fetch-depth"] == 0
    assert checkout["with"]["ref"] == "${{ github.ref_name }}"


def test_pre_commit_hook_runs_reconcile_validate(tmp_path):
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "reconcile-validate" and hook["language"] == "python" and hook["pass_filenames"] is False
    assert re.search(hook["files"], "leads/crm/salesforce.yaml") and not re.search(hook["files"], "README.md")
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text(LEADS, encoding="utf-8")
    argv = shlex.split(hook["entry"]) + list(hook.get("args", []))
    assert argv[0] == "reconcile"
    command = [sys.executable, "-m", "reconcile", *argv[1:]]
    ok = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "leads" / "b.yaml").write_text("leads:\n  - email: nope\n", encoding="utf-8")
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 3 and bad.stderr.startswith("error: leads/b.yaml:2: ")


def test_expression_evaluator_basics():
    ctx = {"steps": {"plan": {"outputs": {"exitcode": "2"}, "outcome": "success"}}, "inputs": {"comment": "true"},
           "github": {"event": {"pull_request": {"number": 7}}}}
    assert evaluate("steps.plan.outputs.exitcode == '0' || steps.plan.outputs.exitcode == '2'", ctx) is True
    assert evaluate("steps.missing.outputs.exitcode || 'none'", ctx) == "none"
    assert evaluate("!cancelled() && inputs.comment == 'TRUE'", ctx) is True
    assert evaluate("github.event.pull_request.number == 7", ctx) is True
    assert interpolate("pr-${{ github.event.pull_request.number }}", ctx) == "pr-7"
    assert not condition_holds("steps.plan.outcome == 'success'", ctx, failed=True)
    assert condition_holds("always() && steps.plan.outcome == 'success'", ctx, failed=True)
