"""The GitHub Actions integration: the workflows and the composite action run locally, step by step.

`tests/workflow_runner.py` executes the `run:` steps of `.github/workflows/*.yml` and of `action.yml`
in bash, in order, with the variables GitHub sets pointed at temporary files, a fake pull-request or
push event, a fake `gh` that keeps comments in a JSON file, a local bare repository as `origin` and,
for apply, the built-in Marketo emulator. A broken step fails here, not on GitHub.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from clirunner import invoke
from conftest import v1_state
from reconcile.ci import annotations, comment as comment_helpers, commit as commit_helpers
from reconcile.store.state import lead_to_json, load_state
from workflow_runner import WorkflowRunner, condition_holds, evaluate, interpolate, parse_output_file

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PLAN_WORKFLOW = WORKFLOWS / "reconcile-plan.yml"
APPLY_WORKFLOW = WORKFLOWS / "reconcile-apply.yml"
ACTION = ROOT / "action.yml"
REPO = "acme/marketo-leads"
PR_NUMBER = 7
MARKER = "<!-- reconcile-plan -->"

LEADS = textwrap.dedent("""\
    leads:
      - email: ada@example.com
        attributes:
          Company: Analytical Engines
          FirstName: Ada
      - email: grace@example.com
        attributes: {Company: Navy, FirstName: Grace, PostalCode: 01234}
      - foreignSysPersonId: "A-1"
        foreignSysType: SFDC
        email: sam@example.com
        attributes: {LastName: Lee}
    """)

GIT_ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com", "GIT_COMMITTER_NAME": "Dev",
           "GIT_COMMITTER_EMAIL": "dev@example.com", "GIT_CONFIG_NOSYSTEM": "1"}


# --------------------------------------------------------------------------------------------------
# Fixtures: an origin repository, a fake `gh`, a runner


def git(*args: str, cwd: Path, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV, "HOME": str(cwd)})
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout


class Origin:
    """A bare `origin` and a developer's clone of it."""

    def __init__(self, base: Path, files: dict[str, str]):
        self.bare = base / "origin.git"
        self.clone = base / "dev"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=base)
        git("clone", "--quiet", str(self.bare), str(self.clone), cwd=base)
        git("checkout", "--quiet", "-b", "main", cwd=self.clone)
        shutil.copytree(ROOT / "schemas", self.clone / "schemas")
        self.commit(files, "Initial lead files")

    def commit(self, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        if git("rev-parse", "--abbrev-ref", "HEAD", cwd=self.clone, check=False).strip() != branch:
            exists = git("rev-parse", "--verify", "--quiet", branch, cwd=self.clone, check=False).strip()
            git("checkout", "--quiet", *([] if exists else ["-b"]), branch, cwd=self.clone)
        if git("ls-remote", "origin", f"refs/heads/{branch}", cwd=self.clone).strip():
            git("pull", "--quiet", "--rebase", "origin", branch, cwd=self.clone)
        for name, text in files.items():
            path = self.clone / name
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        git("add", "-A", cwd=self.clone)
        git("commit", "--quiet", "-m", message, cwd=self.clone)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=self.clone)
        return git("rev-parse", "HEAD", cwd=self.clone).strip()

    def show(self, ref: str, path: str) -> str:
        return git("show", f"{ref}:{path}", cwd=self.bare)

    def state(self, ref: str, into: Path) -> dict:
        """The state committed at `ref` (its top file and shards), as {"leads": {key: fields}}."""
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", ref], cwd=self.bare, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        state = load_state(into / "reconcile.state.json")
        return {"leads": {key: lead_to_json(lead) for key, lead in state.leads.items()}}

    def log(self, ref: str = "main", fmt: str = "%an <%ae>%n%B%x00") -> list[str]:
        return [entry.strip() for entry in git("log", f"--format={fmt}", ref, cwd=self.bare).split("\x00")
                if entry.strip()]


FAKE_GH = r'''#!@PYTHON@
"""A fake GitHub CLI: `gh api` for issue comments, kept in $FAKE_GH_DB; every call logged to $FAKE_GH_LOG."""
import json, os, re, sys

db_path, log_path = os.environ["FAKE_GH_DB"], os.environ["FAKE_GH_LOG"]
db = json.load(open(db_path)) if os.path.exists(db_path) else {"next_id": 9001, "comments": []}
args = sys.argv[1:]
entry = {"argv": args, "gh_token_set": bool(os.environ.get("GH_TOKEN"))}

def finish(code, out="", err=""):
    entry["exit"] = code
    with open(log_path, "a") as handle:
        handle.write(json.dumps(entry) + "\n")
    json.dump(db, open(db_path, "w"), indent=1)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)

if not os.environ.get("GH_TOKEN"):
    finish(4, err="gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.\n")
if not args or args[0] != "api":
    finish(2, err="fake gh: only `gh api` is simulated\n")
method, payload, paginate, path, rest = "GET", None, False, None, args[1:]
while rest:
    arg = rest.pop(0)
    if arg in ("--method", "-X"):
        method = rest.pop(0).upper()
    elif arg == "--input":
        payload = json.load(open(rest.pop(0)))
    elif arg == "--paginate":
        paginate = True
    elif arg.startswith("-"):
        finish(2, err=f"fake gh: flag {arg} is not simulated\n")
    else:
        path = arg
entry.update(method=method, path=path, paginate=paginate, body=(payload or {}).get("body"))
if path == "user" and method == "GET":
    # GITHUB_TOKEN (an installation token) may not ask who it is; a personal token may
    login = os.environ.get("FAKE_GH_USER")
    if not login:
        finish(1, err="gh: Resource not accessible by integration (HTTP 403)\n")
    finish(0, json.dumps({"login": login, "type": "User"}))
listing = re.fullmatch(r"repos/([^/]+/[^/]+)/issues/(\d+)/comments(?:\?per_page=\d+)?", path or "")
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
finish(1, err="gh: Not Found (HTTP 404)\n")
'''


class FakeGitHub:
    def __init__(self, base: Path):
        self.bin = base / "fake-gh-bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.db = base / "gh-comments.json"
        self.log = base / "gh-calls.jsonl"
        script = self.bin / "gh"
        script.write_text(FAKE_GH.replace("@PYTHON@", sys.executable), encoding="utf-8")
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


# --------------------------------------------------------------------------------------------------
# reconcile.ci.github helpers


def _diagnostic(message, file=None, line=None, path=None, severity="error"):
    return json.dumps({"severity": severity, "file": file, "line": line, "path": path, "message": message,
                       "exit_code": 3})


def test_annotate_turns_json_diagnostics_into_escaped_commands_and_passes_the_rest():
    lines = ["6 leads in 4 files are valid.",
             _diagnostic("'50%, sure' is not an email\r", "leads/a.yaml", 12, "leads[3].email"),
             _diagnostic("a\nb", "/ws/leads/b,c.yaml", 2),
             _diagnostic("not valid JSON", "reconcile.state.json"),
             _diagnostic("MARKETO_USER_ID is not set"),
             _diagnostic("lock is stale", severity="warning"),
             "error: leads/x.yaml:3: human text is not an API",
             '{"not": "a diagnostic"}']
    result = invoke("ci", "annotate", "--workspace", "/ws", stdin="\n".join(lines) + "\n",
                    environ={"GITHUB_WORKSPACE": "/elsewhere"})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "6 leads in 4 files are valid.",
        "::error file=leads/a.yaml,line=12::leads[3].email: '50%25, sure' is not an email%0D",
        "::error file=leads/b%2Cc.yaml,line=2::a%0Ab",
        "::error file=reconcile.state.json::not valid JSON",
        "::error::MARKETO_USER_ID is not set",
        "::warning::lock is stale",
        "error: leads/x.yaml:3: human text is not an API",
        '{"not": "a diagnostic"}']
    assert annotations.escape_property("a:b,c%\r\n") == "a%3Ab%2Cc%25%0D%0A"
    assert annotations.escape_data("a:b,c%\r\n\x1b") == "a:b,c%25%0D%0A\\x1b"


def test_annotate_never_passes_a_command_through():
    hostile = ["::add-mask::X", "  ::stop-commands::pwn", "text ##[set-output name=x]y"]
    result = invoke("ci", "annotate", stdin="\n".join(hostile) + "\n")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["\\x3a:add-mask::X", "  \\x3a:stop-commands::pwn",
                                          "text ##\\x5bset-output name=x]y"]


def test_comment_body_truncation_keeps_markdown_balanced():
    body = "### reconcile plan\n\n" + "".join(
        f"<details><summary>part {i}</summary>\n\n```diff\n" + ("+ line\n" * 400) + "```\n\n</details>\n"
        for i in range(40))
    where = comment_helpers.CommentContext(artifact_url="https://a/1", run_url="https://r", sha="f" * 40)
    out = comment_helpers.comment_body(plan_markdown=body, exitcode=2, context=where)
    assert len(out) <= comment_helpers.COMMENT_LIMIT
    assert out.startswith(MARKER + "\n### reconcile plan")
    head = out.split("> [!WARNING]")[0]
    assert head.count("```") % 2 == 0 and head.count("<details>") == head.count("</details>")
    assert "[`reconcile-plan`](https://a/1)" in out and "[workflow run](https://r)" in out
    small = comment_helpers.comment_body(plan_markdown="### reconcile plan\n", exitcode=0)
    assert "[!WARNING]" not in small and "changes nothing" in small


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


def test_commit_state_rebases_over_a_concurrent_push(tmp_path):
    origin = Origin(tmp_path, {"leads/a.yaml": LEADS, "reconcile.state.json": '{"serial": 1}\n'})
    runner_clone = tmp_path / "runner"
    git("clone", "--quiet", str(origin.bare), str(runner_clone), cwd=tmp_path)
    (runner_clone / "reconcile.state.json").write_text('{"serial": 2}\n')
    (runner_clone / "reconcile.state.json.journal").write_text("{}\n")  # never committed
    origin.commit({"leads/b.yaml": "leads: []\n"}, "Someone merged meanwhile")
    environ = {**os.environ, "HOME": str(tmp_path), "GIT_CONFIG_NOSYSTEM": "1", "GITHUB_TOKEN": "ghs_secret"}
    messages: list[str] = []
    sha = commit_helpers.commit_state("reconcile.state.json", branch="main", attempts=3, environ=environ,
                                  message="reconcile: record apply results [skip ci]\n", cwd=str(runner_clone),
                                  sleep=lambda s: None, log=messages.append)
    assert sha == git("rev-parse", "main", cwd=origin.bare).strip()
    assert "rebasing onto the new tip" in messages[0]
    log = origin.log()
    assert log[0].startswith("github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>")
    assert "[skip ci]" in log[0] and "Someone merged meanwhile" in log[1]
    assert origin.show("main", "reconcile.state.json") == '{"serial": 2}\n'
    assert "journal" not in git("ls-tree", "-r", "--name-only", "main", cwd=origin.bare)
    assert "ghs_secret" not in (runner_clone / ".git" / "config").read_text()
    # nothing to do when the state did not change
    assert commit_helpers.commit_state("reconcile.state.json", branch="main", message="x", environ=environ,
                                   cwd=str(runner_clone), log=messages.append) is None
    # a conflicting change to the state on main is an error, not a merge
    (runner_clone / "reconcile.state.json").write_text('{"serial": 3}\n')
    origin.commit({"reconcile.state.json": '{"serial": 99}\n'}, "Hand edit")
    with pytest.raises(commit_helpers.CommitError, match="cannot be merged"):
        commit_helpers.commit_state("reconcile.state.json", branch="main", message="m [skip ci]", environ=environ,
                                cwd=str(runner_clone), sleep=lambda s: None, log=messages.append)


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
