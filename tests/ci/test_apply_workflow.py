"""The apply workflow on merges to main, run step by step against the emulator: it applies and commits
the state back without leaking a secret, a remote failure fails the job, explains it and keeps the
evidence, a partial apply commits what was applied and fails, the journal goes to the artifact, and
deletions happen only when the repository sets allow-delete.

`tests/workflow_runner.py` executes the `run:` steps in bash, with a fake push event and a local bare
repository as `origin`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from clirunner import invoke
from conftest import v1_state
from workflow_runner import WorkflowRunner
from workflow_repos import APPLY_WORKFLOW, LEADS, REPO, ROOT, Origin, git

# --------------------------------------------------------------------------------------------------
# Merges to main: apply, commit the state back, fail clearly


def push_event(sha: str) -> dict:
    return {"ref": "refs/heads/main", "after": sha, "repository": {"full_name": REPO},
            "head_commit": {"id": sha, "message": "Merge pull request #7"}, "pusher": {"name": "octocat"}}


def run_apply(base: Path, origin: Origin, secrets: dict[str, str], *, actor: str = "octocat"):
    sha = git("rev-parse", "main", cwd=origin.bare).strip()
    runner = WorkflowRunner(base, project=ROOT, origin=origin.bare, event_name="push", event=push_event(sha),
                            repository=REPO, ref="refs/heads/main", sha=sha, actor=actor, secrets=secrets)
    return runner, runner.run_job(APPLY_WORKFLOW, "apply")


def marketo_secrets(emulator, key: str | None = None) -> dict[str, str]:
    return {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": emulator.user_id,
            "MARKETO_ENCRYPTION_KEY": key or emulator.encryption_key}


def _assert_no_secret(job, origin: Origin, secret: str) -> None:
    assert secret not in job.output and secret not in job.summary
    for step in job.steps:
        if step.script:
            assert secret not in step.script
    assert secret not in git("log", "-p", "--all", cwd=origin.bare)


def test_merge_applies_and_commits_the_state_back(tmp_path, emulator):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    merged = git("rev-parse", "main", cwd=origin.bare).strip()
    runner, job = run_apply(tmp_path / "run1", origin, marketo_secrets(emulator))
    assert job.status == "success", job.output
    checkout = job.step("Check out main")
    assert checkout.with_["ref"] == "main" and checkout.with_["persist-credentials"] is False
    apply = job.step("Apply")
    assert apply.outputs == {"exitcode": "0"}
    # secrets reach the apply step only
    for step in job.steps:
        if step.kind == "run":
            has_key = step.env.get("MARKETO_ENCRYPTION_KEY") == emulator.encryption_key
            assert has_key == (step.name == "Apply"), step.name

    # Marketo has the leads; the state on main records their IDs, committed by the bot with [skip ci]
    in_marketo = {(lead["email"] or "").lower(): lead["id"] for lead in emulator.leads()}
    state = origin.state("main", tmp_path / "committed")
    assert sorted(state["leads"]) == ["email:ada@example.com", "email:grace@example.com", "fsp:SFDC:A-1"]
    ids = {key: lead["leadId"] for key, lead in state["leads"].items()}
    assert ids == {"email:ada@example.com": in_marketo["ada@example.com"],
                   "email:grace@example.com": in_marketo["grace@example.com"],
                   "fsp:SFDC:A-1": in_marketo["sam@example.com"]}
    [last, previous] = origin.log()[:2]
    assert last.startswith("github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>")
    subject = last.splitlines()[1]
    assert subject == f"reconcile: record apply results in reconcile.state.json for {merged[:7]} [skip ci]"
    assert "Apply complete" in last and f"https://github.com/{REPO}/actions/runs/4242" in last
    assert "Initial lead files" in previous
    tree = git("ls-tree", "-r", "--name-only", "main", cwd=origin.bare).split()
    assert [name for name in tree if not name.startswith("reconcile.state.d/")] == [
        "leads/customers.yaml", "reconcile.state.json", "schemas/leads.schema.json", "schemas/mktows.wsdl",
        "schemas/mktows.xsd"]  # no journal, no lock
    assert all(re.fullmatch(r"reconcile\.state\.d/(\.gitignore|[0-9a-f]{2}\.jsonl)", name) for name in tree
               if name.startswith("reconcile.state.d/")), tree

    # the summary says what happened
    assert "### reconcile apply: succeeded" in job.summary
    assert "The state records 3 change(s)" in job.summary
    assert f"| recorded | email:ada@example.com | {ids['email:ada@example.com']} |" in job.summary
    commit = job.step("Commit the state").outputs
    assert commit["committed"] == "true" and commit["commit"] == git("rev-parse", "main", cwd=origin.bare).strip()
    assert f"Committed the updated `reconcile.state.json` to `main` as `{commit['commit'][:12]}`" in job.summary
    assert job.step("Upload the journal, state and log").outcome == "skipped" and job.artifacts == {}
    _assert_no_secret(job, origin, emulator.encryption_key)

    # The bot's own push would be skipped; a re-run on the new tip has nothing to do and commits nothing
    _, skipped = run_apply(tmp_path / "run2", origin, marketo_secrets(emulator), actor="github-actions[bot]")
    assert skipped.status == "skipped"
    before = git("rev-parse", "main", cwd=origin.bare).strip()
    _, again = run_apply(tmp_path / "run3", origin, marketo_secrets(emulator))
    assert again.status == "success", again.output
    assert again.step("Commit the state").outputs == {"committed": "false", "commit": ""}
    assert git("rev-parse", "main", cwd=origin.bare).strip() == before
    assert "Marketo already matched the lead files" in again.summary


def test_a_remote_failure_fails_the_job_explains_it_and_keeps_the_evidence(tmp_path, emulator):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    before = git("rev-parse", "main", cwd=origin.bare).strip()
    wrong = "not-the-right-key-0123456789"
    _, job = run_apply(tmp_path / "run", origin, marketo_secrets(emulator, key=wrong))
    assert job.status == "failure"
    apply = job.step("Apply")
    assert apply.outcome == "failure" and apply.returncode == 4 and apply.outputs == {"exitcode": "4"}
    assert any(line.startswith("::error") for line in apply.stdout.splitlines()), apply.stdout
    assert emulator.leads() == []
    # the summary explains exit 4 and what to do
    assert "### reconcile apply: failed (exit 4, remote failure)" in job.summary
    assert "Check the `MARKETO_*` repository secrets" in job.summary
    assert "Kept in the artifact `reconcile-apply-4242-1`: `apply.log`." in job.summary
    # the state did not change: nothing committed; the log (and journal, if any) are an artifact
    assert job.step("Commit the state").outcome == "success"
    assert job.step("Commit the state").outputs["committed"] == "false"
    assert git("rev-parse", "main", cwd=origin.bare).strip() == before
    upload = job.step("Upload the journal, state and log")
    assert upload.outcome == "success"
    artifact = job.artifacts["reconcile-apply-4242-1"]
    assert "apply.log" in artifact["files"]
    assert '"exit_code": 4' in (artifact["dir"] / "apply.log").read_text()
    _assert_no_secret(job, origin, wrong)
    _assert_no_secret(job, origin, emulator.encryption_key)


def test_a_partial_apply_commits_what_was_applied_and_fails(tmp_path, emulator):
    bad = LEADS + "  - email: odd@example.com\n    attributes: {Shoe_Size__c: '44'}\n"
    origin = Origin(tmp_path, {"leads/customers.yaml": bad})
    _, job = run_apply(tmp_path / "run", origin, marketo_secrets(emulator))
    assert job.status == "failure"
    assert job.step("Apply").outputs == {"exitcode": "5"}
    assert "### reconcile apply: partially applied (exit 5)" in job.summary
    assert "Shoe_Size__c" in job.summary
    state = origin.state("main", tmp_path / "committed")
    assert "email:odd@example.com" not in state["leads"] and len(state["leads"]) == 3
    assert "[skip ci]" in origin.log()[0]
    assert "reconcile-apply-4242-1" in job.artifacts
    assert "reconcile.state.json" in job.artifacts["reconcile-apply-4242-1"]["files"]


def test_summarize_apply_collects_the_journal_for_the_artifact(tmp_path, monkeypatch):
    (tmp_path / "reconcile.state.json").write_text(json.dumps(
        v1_state({"email:a@example.com": {"leadId": 5, "email": "a@example.com"}}, serial=2, lineage="l")))
    (tmp_path / "reconcile.state.json.journal").write_text('{"type": "begin"}\n')
    log = tmp_path / "apply.log"
    log.write_text("Apply complete: 1 created, 0 updated, 0 failed; 2 syncMultipleLeads call(s) in 31.0 s.\n"
                   + json.dumps({"severity": "error", "file": None, "line": None, "path": None, "exit_code": 4,
                                 "message": "call 2 got no answer (read timeout) (1 lead(s) applied and recorded "
                                            "before it stopped)"}) + "\n"
                   "error: a human line is not read as an error\n")
    summary = tmp_path / "summary.md"
    environ = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_REPOSITORY": REPO, "GITHUB_RUN_ID": "9"}
    monkeypatch.chdir(tmp_path)
    result = invoke("ci", "summarize-apply", "--exitcode", "4", "--log", str(log), "--before", "/nonexistent",
                    "--artifact-name", "reconcile-apply-9-1", "--collect", "evidence", environ=environ)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "evidence").iterdir()) == [
        "apply.log", "reconcile.state.json", "reconcile.state.json.journal"]
    text = summary.read_text()
    assert text.startswith("### reconcile apply: failed (exit 4, remote failure)\n")
    assert "Kept in the artifact `reconcile-apply-9-1`: `reconcile.state.json`, `reconcile.state.json.journal`, " \
           "`apply.log`." in text
    assert "The apply journal (`*.journal`) lists calls that were sent and never answered" in text
    assert "| recorded | email:a@example.com | 5 |" in text
    assert "```text\ncall 2 got no answer (read timeout)" in text
    assert "a human line" not in text


def _rest_secrets(emulator) -> dict[str, str]:
    return {"MARKETO_CLIENT_ID": emulator.config.client_id, "MARKETO_CLIENT_SECRET": emulator.config.client_secret,
            "MARKETO_REST_ENDPOINT": emulator.rest_endpoint}


def test_apply_deletes_only_when_the_repository_sets_allow_delete(tmp_path, emulator):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS.split("  - foreignSysPersonId")[0]})
    _, first = run_apply(tmp_path / "run1", origin, _rest_secrets(emulator))
    assert first.status == "success", first.output
    origin.commit({"leads/customers.yaml": LEADS.split("  - email: grace")[0]
                   + "  - email: grace@example.com\n    deleted: true\n"}, "Grace left")

    _, refused = run_apply(tmp_path / "run2", origin, _rest_secrets(emulator))
    assert refused.status == "failure" and refused.step("Apply").outputs == {"exitcode": "64"}
    assert "--allow-delete" not in refused.step("Apply").script.split("deletion=(--allow-delete)")[1]
    assert "grace@example.com" in {lead["email"] for lead in emulator.leads()}

    allowing = tmp_path / "reconcile-apply.yml"
    allowing.write_text(APPLY_WORKFLOW.read_text().replace('allow-delete: "false"', 'allow-delete: "true"'))
    sha = git("rev-parse", "main", cwd=origin.bare).strip()
    runner = WorkflowRunner(tmp_path / "run3", project=ROOT, origin=origin.bare, event_name="push",
                            event=push_event(sha), repository=REPO, ref="refs/heads/main", sha=sha, actor="octocat",
                            secrets=_rest_secrets(emulator))
    allowed = runner.run_job(allowing, "apply")
    assert allowed.status == "success", allowed.output
    assert "grace@example.com" not in {lead["email"] for lead in emulator.leads()}
    assert "email:grace@example.com" not in origin.state("main", tmp_path / "committed")["leads"]
