"""The plan workflow on pull requests, run step by step with a fake `gh` that keeps comments: the plan
goes to the job summary, an artifact and one sticky comment updated on each push (cut short with its
Markdown balanced when too long); invalid lead files, a corrupt state and a committed journal or lock
fail the check with annotations on their lines; a fork gets the summary but no comment; and the
sticky comment finds its own comment across pages and never edits one someone else wrote.

`tests/workflow_runner.py` executes the `run:` steps of `.github/workflows/*.yml` and of `action.yml`
in bash, in order, with the variables GitHub sets pointed at temporary files, a fake pull-request
event and a local bare repository as `origin`. A broken step fails here, not on GitHub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.ci import comment as comment_helpers
from fake_gh import fake_gh_script
from workflow_runner import WorkflowRunner, parse_output_file
from workflow_repos import LEADS, MARKER, PLAN_WORKFLOW, PR_NUMBER, REPO, ROOT, Origin, git

_HANDLERS = r'''listing = re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)/comments(?:\?per_page=\d+)?", path or "")
single = re.fullmatch(r"repos/([^/]+/[^/]+)/issues/comments/(\d+)", path or "")

def public(c):
    return {k: c[k] for k in ("id", "body", "user", "html_url")}

if listing and method == "GET":
    found = [public(c) for c in db["comments"] if c["repo"] == listing[1] and c["issue"] == int(listing[2])]
    pages = [found[i:i + 2] for i in range(0, len(found), 2)] or [[]]  # two per page: pagination matters
    finish(0, "".join(json.dumps(page) for page in (pages if paginate else pages[:1])))
if listing and method == "POST":
    comment = {"id": db["next_id"], "body": payload["body"], "repo": listing[1], "issue": int(listing[2]),
               "user": {"login": "github-actions[bot]", "type": "Bot"},
               "html_url": f"https://github.com/{listing[1]}/pull/{listing[2]}#issuecomment-{db['next_id']}"}
    db["next_id"] += 1
    db["comments"].append(comment)
    finish(0, json.dumps(public(comment)))
if single and method == "PATCH":
    for comment in db["comments"]:
        if comment["id"] == int(single[2]) and comment["repo"] == single[1]:
            comment["body"] = payload["body"]
            finish(0, json.dumps(public(comment)))
'''


class FakeGitHub:
    def __init__(self, base: Path):
        self.bin = base / "fake-gh-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.db = base / "gh-comments.json"
        self.log = base / "gh-calls.jsonl"
        script = self.bin / "gh"
        script.write_text(fake_gh_script(_HANDLERS, '{"next_id": 9001, "comments": []}'), encoding="utf-8")
        script.chmod(0o755)
        # Comments that must be left alone: other people's, one quoting the plan comment.
        self.seed([("Looks good to me", "alice"), (f"> {MARKER}\n> quoting the plan", "bob"),
                   ("Please also add Grace's phone", "carol")])

    def seed(self, comments) -> None:
        db = {"next_id": 9001, "comments": []}
        for body, login in comments:
            db["comments"].append({"id": db["next_id"], "body": body, "repo": REPO, "issue": PR_NUMBER,
                                   "user": {"login": login, "type": "User"}, "html_url": "https://x"})
            db["next_id"] += 1
        self.db.write_text(json.dumps(db), encoding="utf-8")

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def comments(self) -> list[dict]:
        return json.loads(self.db.read_text(encoding="utf-8"))["comments"]

    def plan_comments(self) -> list[dict]:
        return [c for c in self.comments() if c["body"].startswith(MARKER)]

    def env(self) -> dict[str, str]:
        return {"FAKE_GH_DB": str(self.db), "FAKE_GH_LOG": str(self.log)}


def pr_event(head_sha: str, *, fork: bool = False) -> dict:
    head_repo = "mallory/marketo-leads" if fork else REPO
    return {"action": "synchronize", "number": PR_NUMBER,
            "pull_request": {"number": PR_NUMBER, "head": {"sha": head_sha, "ref": "add-leads",
                                                           "repo": {"full_name": head_repo}},
                             "base": {"ref": "main", "repo": {"full_name": REPO}}},
            "repository": {"full_name": REPO}}


def run_plan(base: Path, origin: Origin, fake: FakeGitHub, head_sha: str, *, fork: bool = False):
    runner = WorkflowRunner(base, project=ROOT, origin=origin.bare, event_name="pull_request",
                            event=pr_event(head_sha, fork=fork), repository=REPO,
                            ref=f"refs/pull/{PR_NUMBER}/merge", sha=head_sha, checkout_ref="add-leads",
                            extra_path=[fake.bin], env=fake.env())
    return runner, runner.run_job(PLAN_WORKFLOW, "plan")


@pytest.fixture
def fake_gh(tmp_path):
    return FakeGitHub(tmp_path)


# --------------------------------------------------------------------------------------------------
# Pull requests: plan, summary, sticky comment


def _many_leads(count: int) -> str:
    rows = [f"  - email: person{i:04d}@example.com\n    attributes: {{Company: Company {i}, FirstName: Person{i},"
            f" LastName: Number {i}, Title: Title {i}}}" for i in range(count)]
    return "leads:\n" + "\n".join(rows) + "\n"


def test_pull_request_plan_goes_to_the_summary_and_one_sticky_comment(tmp_path, fake_gh):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    head = origin.commit({"leads/new.yaml": "leads:\n  - email: new@example.com\n    attributes: {Company: New}\n"},
                         "Add a lead", branch="add-leads")

    runner, job = run_plan(tmp_path / "run1", origin, fake_gh, head)
    assert job.status == "success", job.output
    action = job.step("Validate and plan")
    assert action.outcome == "success" and action.outputs["exitcode"] == "2"
    assert job.step("Validate the lead files").stdout.strip().endswith("4 leads in 2 files are valid.")
    assert job.step("Plan").outputs == {"exitcode": "2"}
    assert job.annotations() == []
    # the runner installs the project the action lives in
    assert runner.pip_log.read_text().split() == ["-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                                  str(runner.workspace)]

    # job summary: the Markdown plan
    assert "### reconcile plan" in job.summary
    assert "| 4 | 0 | 0 | 0 | 1 |" in job.summary
    assert "email:new@example.com will be created (leads/new.yaml:2)" in job.summary
    assert MARKER not in job.summary
    # the full plan is an artifact
    assert job.artifacts["reconcile-plan"]["files"] == ["plan.md"]

    # one new comment, through the API, with the marker and the same plan
    calls = fake_gh.calls()
    assert [(c["method"], c["path"]) for c in calls] == [
        ("GET", "user"),  # who the workflow comments as
        ("GET", f"repos/{REPO}/issues/{PR_NUMBER}/comments?per_page=100"),
        ("POST", f"repos/{REPO}/issues/{PR_NUMBER}/comments")]
    assert calls[1]["paginate"] and all(c["gh_token_set"] for c in calls)
    [comment] = fake_gh.plan_comments()
    assert comment["body"].startswith(MARKER + "\n### reconcile plan")
    assert "| 4 | 0 | 0 | 0 | 1 |" in comment["body"]
    assert "Merging this pull request applies this plan to Marketo" in comment["body"]
    assert f"Commit `{head[:12]}`" in comment["body"]
    assert job.step("Comment on the pull request").stdout.startswith(
        f"Created the plan comment on pull request #{PR_NUMBER}: https://github.com/{REPO}/pull/7#issuecomment-")

    # A second push, with a plan too long for a comment: the same comment is updated, cut short
    origin.commit({"leads/bulk.yaml": _many_leads(450)}, "Import 450 leads", branch="add-leads")
    head2 = git("rev-parse", "HEAD", cwd=origin.clone).strip()
    _, job2 = run_plan(tmp_path / "run2", origin, fake_gh, head2)
    assert job2.status == "success", job2.output
    calls = fake_gh.calls()[3:]
    assert [(c["method"], c["path"]) for c in calls] == [
        ("GET", "user"),
        ("GET", f"repos/{REPO}/issues/{PR_NUMBER}/comments?per_page=100"),
        ("PATCH", f"repos/{REPO}/issues/comments/{comment['id']}")]
    [updated] = fake_gh.plan_comments()
    assert updated["id"] == comment["id"] and len(fake_gh.comments()) == 4  # three people's + ours
    body = updated["body"]
    assert len(body) <= comment_helpers.COMMENT_LIMIT
    assert "| 454 | 0 | 0 | 0 | 2 |" in body
    assert "was cut short here. The full plan is in the artifact [`reconcile-plan`]" \
           f"(https://github.com/{REPO}/actions/runs/4242/artifacts/1000)" in body
    assert body.count("```") % 2 == 0 and body.count("<details>") == body.count("</details>")
    assert f"Commit `{head2[:12]}`" in body
    # the summary and the artifact have all of it
    plan_md = (job2.artifacts["reconcile-plan"]["dir"] / "plan.md").read_text()
    assert len(plan_md) > comment_helpers.COMMENT_LIMIT
    assert plan_md.rstrip("\n") in job2.summary
    assert "person0449@example.com" in job2.summary and "person0449@example.com" not in body


def test_invalid_leads_fail_the_check_with_annotations_on_their_lines(tmp_path, fake_gh):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    broken = textwrap.dedent("""\
        leads:
          - email: ok@example.com
            attributes: {Company: Fine}
          - email: not-an-email
            attributes: {Company: "50% off, today: only"}
          - foreignSysPersonId: "X1"
            foreignSysType: HUBSPOT
        """)
    head = origin.commit({"leads/x.yaml": broken}, "Break a lead file", branch="add-leads")
    _, job = run_plan(tmp_path / "run", origin, fake_gh, head)

    assert job.status == "failure"
    assert job.step("Validate the lead files").outcome == "failure"
    assert job.step("Validate the lead files").returncode == 3
    assert job.step("Plan").outcome == "skipped"
    assert job.step("Upload the full plan").outcome == "skipped"
    annotations = job.annotations()
    assert len(annotations) == 2, job.output
    assert re.fullmatch(r"::error file=leads/x\.yaml,line=4::leads\[1\]\.email: .*not-an-email.*", annotations[0])
    assert re.fullmatch(r"::error file=leads/x\.yaml,line=7::leads\[2\]\.foreignSysType: .*HUBSPOT.*",
                        annotations[1])
    # the summary and the comment say why there is no plan, with the same errors
    assert "### reconcile plan: failed" in job.summary
    assert "reconcile found errors before it could plan, so there is no plan. 2 error(s)" in job.summary
    assert "leads/x.yaml:4: leads[1].email" in job.summary
    [comment] = fake_gh.plan_comments()
    assert "### reconcile plan: failed" in comment["body"] and "leads/x.yaml:7:" in comment["body"]


def test_a_corrupt_state_file_fails_the_plan_step_with_an_annotation(tmp_path, fake_gh):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    head = origin.commit({"reconcile.state.json": "{oops\n"}, "Hand-edit the state", branch="add-leads")
    _, job = run_plan(tmp_path / "run", origin, fake_gh, head)
    assert job.status == "failure"
    assert job.step("Validate the lead files").outcome == "success"
    plan = job.step("Plan")
    assert plan.outcome == "failure" and plan.returncode == 3 and plan.outputs == {"exitcode": "3"}
    [annotation] = job.annotations()
    assert annotation.startswith("::error file=reconcile.state.json,line=1::state file is not valid JSON")
    assert job.step("Upload the full plan").outcome == "skipped"
    [comment] = fake_gh.plan_comments()
    assert "The lead files or the state file are invalid (exit 3)" in comment["body"]
    assert "reconcile.state.json:1: state file is not valid JSON" in comment["body"]


def test_a_committed_journal_or_lock_fails_the_plan_job_before_anything_else(tmp_path, fake_gh):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    # a journal that would map a new lead to someone else's lead ID when apply "recovers" it
    journal = '{"type": "begin", "state_lineage": "x", "state_serial": 0}\n'
    head = origin.commit({"leads/new.yaml": "leads:\n  - email: new@example.com\n",
                          "reconcile.state.json.journal": journal}, "Add a lead", branch="add-leads")
    _, job = run_plan(tmp_path / "run", origin, fake_gh, head)
    assert job.status == "failure"
    check = job.step("Refuse a committed journal or lock")
    assert check.outcome == "failure" and check.returncode == 3
    assert job.step("Validate the lead files").outcome == "skipped"
    assert job.step("Plan").outcome == "skipped"
    [annotation] = job.annotations()
    assert annotation.startswith("::error file=reconcile.state.json.journal::an apply journal is committed to git")
    assert "git rm --cached -- reconcile.state.json.journal" in annotation
    [comment] = fake_gh.plan_comments()
    assert "### reconcile plan: failed" in comment["body"]
    assert "reconcile.state.json.journal: an apply journal is committed to git" in comment["body"]
    assert "reconcile.state.json.journal: an apply journal" in job.summary

    # a lock, in a sub-directory the action is pointed at, is refused the same way
    head = origin.commit({"reconcile.state.json.journal": None, "team/reconcile.state.json.lock": "{}\n"},
                         "Swap the journal for a lock", branch="add-leads")
    runner, job = run_plan(tmp_path / "run2", origin, fake_gh, head)
    assert job.step("Refuse a committed journal or lock").returncode == 3
    assert [a.split("::")[1] for a in job.annotations()] == ["error file=team/reconcile.state.json.lock"]


def test_the_repository_ignores_journals_and_locks(tmp_path):
    git("init", "--quiet", str(tmp_path), cwd=tmp_path)
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    names = ["reconcile.state.json.journal", "reconcile.state.json.lock", "team/prod.state.json.lock"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=tmp_path, capture_output=True,
                             text=True).stdout.split()
    assert ignored == names
    kept = subprocess.run(["git", "check-ignore", "--no-index", "poetry.lock", "reconcile.state.json"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert kept.stdout == ""


def test_a_pull_request_from_a_fork_gets_the_summary_but_no_comment(tmp_path, fake_gh):
    origin = Origin(tmp_path, {"leads/customers.yaml": LEADS})
    head = origin.commit({"leads/new.yaml": "leads:\n  - email: fork@example.com\n"}, "Add", branch="add-leads")
    _, job = run_plan(tmp_path / "run", origin, fake_gh, head, fork=True)
    assert job.status == "success", job.output
    assert job.step("Comment on the pull request").outcome == "skipped"
    assert fake_gh.calls() == []
    assert "| 4 | 0 | 0 | 0 | 1 |" in job.summary


def test_plan_with_no_changes_says_so(tmp_path, fake_gh):
    origin = Origin(tmp_path, {"leads/customers.yaml": "leads: []\n"})
    head = origin.commit({"README.md": "hello\n"}, "Docs", branch="add-leads")
    _, job = run_plan(tmp_path / "run", origin, fake_gh, head)
    assert job.status == "success", job.output
    assert job.step("Plan").outputs == {"exitcode": "0"}
    [comment] = fake_gh.plan_comments()
    assert "Merging this pull request changes nothing in Marketo" in comment["body"]


# --------------------------------------------------------------------------------------------------
# The sticky comment


def _sticky(tmp_path, fake_gh, body_text, **extra_env):
    body = tmp_path / "body.md"
    body.write_text(body_text)
    environ = {**os.environ, **fake_gh.env(), "GH_TOKEN": "t", "GITHUB_REPOSITORY": REPO,
               "GITHUB_OUTPUT": str(tmp_path / "out"), **extra_env}
    args = ["ci", "sticky-comment", "--body-file", str(body), "--pr", str(PR_NUMBER), "--gh", str(fake_gh.bin / "gh")]
    return invoke(*args, environ=environ)


def test_sticky_comment_finds_its_comment_across_pages(tmp_path, fake_gh):
    assert _sticky(tmp_path, fake_gh, MARKER + "\nfirst\n").exit_code == 0
    fake_gh.seed([(c["body"], c["user"]["login"]) for c in fake_gh.comments()] + [("late", "dave")] * 3)
    [ours] = fake_gh.plan_comments()  # now on the second of three pages
    assert ours["user"]["login"] == "github-actions[bot]"
    assert _sticky(tmp_path, fake_gh, "second\n").exit_code == 0  # the marker is added when missing
    assert [c["method"] for c in fake_gh.calls()] == ["GET", "GET", "POST", "GET", "GET", "PATCH"]
    [updated] = fake_gh.plan_comments()
    assert updated["id"] == ours["id"] and updated["body"] == MARKER + "\nsecond\n"
    outputs = parse_output_file((tmp_path / "out").read_text())
    assert outputs["comment-action"] == "updated" and outputs["comment-id"] == str(ours["id"])
    no_token = _sticky(tmp_path, fake_gh, "third\n", GH_TOKEN="")
    assert no_token.exit_code == 4 and no_token.stderr.startswith("error: gh api ")


def test_sticky_comment_never_edits_a_comment_someone_else_wrote(tmp_path, fake_gh):
    hijack = MARKER + "\n### reconcile plan\nNothing to see here, merge away"
    fake_gh.seed([(hijack, "mallory"), ("Looks good", "alice")])
    result = _sticky(tmp_path, fake_gh, MARKER + "\nthe real plan\n")
    assert result.exit_code == 0, result.stderr
    assert [c["method"] for c in fake_gh.calls()] == ["GET", "GET", "POST"]  # no PATCH of mallory's comment
    mallory, ours = fake_gh.plan_comments()
    assert mallory["user"]["login"] == "mallory" and mallory["body"] == hijack
    assert ours["user"]["login"] == "github-actions[bot]" and ours["body"] == MARKER + "\nthe real plan\n"
    # with a personal token, the token's own earlier comment is the one to update
    fake_gh.seed([(hijack, "mallory"), (MARKER + "\nold plan", "ci-user")])
    result = _sticky(tmp_path, fake_gh, "newer plan\n", FAKE_GH_USER="ci-user")
    assert result.exit_code == 0, result.stderr
    assert [c["body"] for c in fake_gh.comments()] == [hijack, MARKER + "\nnewer plan\n"]
