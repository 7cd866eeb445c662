"""The nightly drift workflow, run step by step against the emulator with a fake `gh` that keeps issues:
one `reconcile-drift` issue opened on drift, updated while it lasts, closed when it is gone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
import yaml

from clirunner import invoke
from reconcile.store.state import load_state
from workflow_repos import REPO, ROOT, WORKFLOWS, Origin, git
from fake_gh import fake_gh_script
from workflow_runner import WorkflowRunner

DRIFT_WORKFLOW = WORKFLOWS / "reconcile-drift.yml"
MARKER = "<!-- reconcile-drift -->"
LEADS = ("leads:\n"
         "  - email: ada@example.com\n"
         "    attributes: {Title: CTO, Company: Analytical Engines}\n"
         "  - email: grace@example.com\n"
         "    attributes: {Title: Admiral}\n")

_HANDLERS = r'''listing = re.fullmatch(r"repos/([^/]+/[^/]+)/issues\?state=open&labels=([^&]+)&per_page=\d+", path or "")
create = re.fullmatch(r"repos/([^/]+/[^/]+)/issues", path or "")
single = re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)", path or "")
comments = re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)/comments", path or "")
if listing and method == "GET":
    found = [i for i in db["issues"] if i["state"] == "open" and listing[2] in i["labels"]]
    pages = [found[i:i + 1] for i in range(0, len(found), 1)] or [[]]  # one per page: pagination matters
    finish(0, "".join(json.dumps(page) for page in (pages if paginate else pages[:1])))
if create and method == "POST":
    issue = {"number": db["next"], "title": payload["title"], "body": payload["body"], "labels": payload["labels"],
             "state": "open", "user": {"login": "github-actions[bot]"}, "comments": [],
             "html_url": f"https://github.com/{create[1]}/issues/{db['next']}"}
    db["next"] += 1
    db["issues"].append(issue)
    finish(0, json.dumps(issue))
for issue in db["issues"]:
    if single and method == "PATCH" and issue["number"] == int(single[2]):
        issue.update(payload)
        finish(0, json.dumps(issue))
    if comments and method == "POST" and issue["number"] == int(comments[2]):
        issue["comments"].append(payload["body"])
        finish(0, json.dumps({"id": 1, "body": payload["body"]}))
'''


class FakeIssues:
    def __init__(self, base: Path):
        self.bin = base / "fake-gh-bin"
        self.bin.mkdir(parents=True)
        self.db, self.log = base / "gh-issues.json", base / "gh-calls.jsonl"
        script = self.bin / "gh"
        script.write_text(fake_gh_script(_HANDLERS), encoding="utf-8")
        script.chmod(0o755)
        # someone else's issue with the label and the marker: never edited, never closed
        self.db.write_text(json.dumps({"next": 101, "issues": [
            {"number": 100, "title": "Drift?", "body": f"{MARKER}\nI think Marketo drifted", "state": "open",
             "labels": ["reconcile-drift"], "user": {"login": "mallory"}, "comments": [], "html_url": "x"}]}))

    def issues(self) -> list[dict]:
        return json.loads(self.db.read_text())["issues"]

    def ours(self) -> list[dict]:
        return [issue for issue in self.issues() if issue["user"]["login"] == "github-actions[bot]"]

    def env(self) -> dict[str, str]:
        return {"FAKE_GH_DB": str(self.db), "FAKE_GH_LOG": str(self.log)}


@pytest.fixture
def setup(tmp_path: Path, emulator_factory, monkeypatch: pytest.MonkeyPatch):
    """An origin whose main holds lead files and a state applied to the emulator (through REST)."""
    emulator = emulator_factory()
    secrets = {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
               "MARKETO_CLIENT_SECRET": emulator.config.client_secret}
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    monkeypatch.chdir(origin.clone)
    applied = invoke("apply", "--auto-approve", environ=secrets)
    assert applied.exit_code == 0, applied.stderr
    git("add", "reconcile.state.json", "reconcile.state.d", cwd=origin.clone)
    git("commit", "--quiet", "-m", "Record the applied state", cwd=origin.clone)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=origin.clone)
    return emulator, secrets, origin, FakeIssues(tmp_path / "gh")


def run_drift(base: Path, origin: Origin, secrets: dict, fake: FakeIssues):
    sha = git("rev-parse", "main", cwd=origin.bare).strip()
    runner = WorkflowRunner(base, project=ROOT, origin=origin.bare, event_name="schedule",
                            event={"schedule": "17 5 * * *"}, repository=REPO, ref="refs/heads/main", sha=sha,
                            secrets=secrets, extra_path=[fake.bin], env=fake.env())
    return runner.run_job(DRIFT_WORKFLOW, "drift")


def edit(emulator, lead_id: int, changes: dict) -> None:
    answer = requests.post(f"{emulator.base_url}/_emulator/leads/{lead_id}", json=changes, timeout=10)
    assert answer.status_code == 200, answer.text


def outside_code_fences(markdown: str) -> str:
    """The lines of `markdown` that GitHub renders as Markdown (not inside a fenced code block)."""
    out, fence = [], None
    for line in markdown.splitlines():
        match = re.match(r"^(`{3,})", line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            out.append(line)
    return "\n".join(out)


def test_the_workflow_is_scheduled_least_privileged_and_pinned() -> None:
    workflow = yaml.safe_load(DRIFT_WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["drift"]["permissions"] == {"contents": "read", "issues": "write"}
    for step in workflow["jobs"]["drift"]["steps"]:
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
        has_secret = "secrets." in json.dumps(step)
        assert has_secret == (step["name"] == "Plan against Marketo"), step["name"]


def test_drift_opens_one_issue_updates_it_and_closes_it_when_gone(tmp_path: Path, setup) -> None:
    emulator, secrets, origin, fake = setup
    ada = load_state("reconcile.state.json").leads["email:ada@example.com"].lead_id

    quiet = run_drift(tmp_path / "run0", origin, secrets, fake)
    assert quiet.status == "success", quiet.output
    assert quiet.step("Plan against Marketo").outputs == {"exitcode": "0"}
    assert quiet.step("Open, update or close the drift issue").outputs["issue-action"] == "none"
    assert fake.ours() == []

    edit(emulator, ada, {"Title": "VP ```\n<img src=x onerror=alert(1)> @octocat"})
    first = run_drift(tmp_path / "run1", origin, secrets, fake)
    assert first.status == "success", first.output
    assert first.step("Plan against Marketo").outputs == {"exitcode": "2"}
    [issue] = fake.ours()
    assert issue["labels"] == ["reconcile-drift"] and issue["state"] == "open"
    body = issue["body"]
    assert body.startswith(MARKER) and "(changed in Marketo)" in body and "apply --refresh" in body
    assert "https://github.com/acme/marketo-leads/actions/runs/4242" in body
    # the hostile value stays inside a code fence longer than its backticks: no markup, no mention
    outside = outside_code_fences(body)
    assert "@octocat" in body and "@octocat" not in outside and "<img" not in outside
    assert "(changed in Marketo)" in first.summary
    # secrets reach the plan step only
    for step in first.steps:
        if step.kind == "run":
            holds = step.env.get("MARKETO_CLIENT_SECRET") == secrets["MARKETO_CLIENT_SECRET"]
            assert holds == (step.name == "Plan against Marketo"), step.name
    assert secrets["MARKETO_CLIENT_SECRET"] not in first.output + first.summary + body

    edit(emulator, ada, {"Title": "Chief Engines Officer"})
    second = run_drift(tmp_path / "run2", origin, secrets, fake)
    assert second.step("Open, update or close the drift issue").outputs["issue-action"] == "updated"
    [issue] = fake.ours()
    assert "Chief Engines Officer" in issue["body"] and "@octocat" not in issue["body"]

    restored = invoke("apply", "--refresh", "--auto-approve", environ=secrets)
    assert restored.exit_code == 0, restored.stderr
    third = run_drift(tmp_path / "run3", origin, secrets, fake)
    assert third.step("Plan against Marketo").outputs == {"exitcode": "0"}
    assert third.step("Open, update or close the drift issue").outputs["issue-action"] == "closed"
    [issue] = fake.ours()
    assert issue["state"] == "closed" and "matches the lead files again" in issue["comments"][-1]
    mallory = [i for i in fake.issues() if i["user"]["login"] == "mallory"]
    assert mallory[0]["state"] == "open" and mallory[0]["body"] == f"{MARKER}\nI think Marketo drifted"


def test_a_failed_refresh_fails_the_job_and_leaves_the_issue_alone(tmp_path: Path, setup) -> None:
    emulator, secrets, origin, fake = setup
    wrong = {**secrets, "MARKETO_CLIENT_SECRET": "not-the-secret-0123456789"}
    job = run_drift(tmp_path / "run", origin, wrong, fake)
    assert job.status == "failure"
    assert job.step("Plan against Marketo").returncode == 4
    assert job.step("Open, update or close the drift issue").outcome == "skipped"
    assert fake.ours() == [] and not fake.log.exists()
