"""A pull request cannot make apply send what its plan did not show.

Each test builds a PR-shaped workspace: a git repository where the pull request committed files that
are not lead files, schemas or the state (`git add -f` gets past .gitignore), cloned fresh as the
workflow does. The run is either refused, naming the file, or the plan shows exactly what apply
sends. Where refused, the files are then taken out of git's index but left on disk (what a checkout
of an older tree leaves behind): they must still change nothing.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import subprocess
from pathlib import Path

import pytest

from clirunner import invoke
from conftest import EMULATOR_TEST_ENCRYPTION_KEY, EMULATOR_TEST_USER_ID

PWNED = "PWNED-NOT-REVIEWED"
ATTACK_MARKDOWN = ("@everyone ![](https://attacker.example/track.png) "
                   "<a href=\"https://attacker.example\">Approve here</a>\n")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout


def customers(count: int = 300, company: str = "Acme") -> str:
    """A lead file big enough for every cache layer to take it (tens of kilobytes)."""
    lines = ["leads:"]
    for index in range(count):
        lines.append(f"  - email: person{index:04d}@example.com\n"
                     f"    attributes: {{FirstName: Person{index}, LastName: Example, Company: {company}, "
                     f"Title: Engineer, City: Springfield}}")
    return "\n".join(lines) + "\n"


def soap_env(emulator, cache: Path) -> dict[str, str]:
    return {"MARKETO_SOAP_ENDPOINT": emulator.endpoint, "MARKETO_USER_ID": EMULATOR_TEST_USER_ID,
            "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY, "RECONCILE_CACHE_DIR": str(cache)}


def repository(root: Path, leads: str) -> Path:
    (root / "leads").mkdir(parents=True)
    (root / "leads" / "customers.yaml").write_text(leads)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "leads")
    return root


def fresh_clone(source: Path, target: Path) -> Path:
    git(source.parent, "clone", "-q", str(source), str(target))
    return target


def run(work: Path, monkeypatch: pytest.MonkeyPatch, *args: str, environ: dict[str, str]):
    monkeypatch.chdir(work)
    return invoke(*args, environ=environ)


def forge_entries(found_in: list[Path], into: Path, plan_text: bytes | None = None) -> int:
    """Rewrite every cache entry found (lead-file parses, and with `plan_text` rendered plans) the way
    an attacker would: same key, different payload, a valid checksum; write them under `into`."""
    forged = 0
    for directory in found_in:
        for entry in sorted(directory.rglob("*.entry")) if directory.is_dir() else []:
            data = entry.read_bytes()
            magic = data[:data.index(b"\n") + 1]
            header = len(magic) + 64
            try:
                payload = marshal.loads(data[header:])
            except (ValueError, EOFError):
                continue
            changed = _forged_payload(payload, plan_text)
            if changed is None:
                continue
            body = marshal.dumps(changed)
            target = into / entry.relative_to(directory)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(magic + data[len(magic):len(magic) + 32]
                               + hashlib.blake2b(body, digest_size=32).digest() + body)
            forged += 1
    return forged


def cache_roots(work: Path, user_cache: Path) -> list[Path]:
    """Where a plan in `work` left cache entries: `.reconcile/cache/` (as reconcile once did) or the
    workspace's folder of the user cache directory."""
    return [work / ".reconcile" / "cache", *sorted(user_cache.glob("workspaces/*"))]


def _forged_payload(payload, plan_text: bytes | None):
    if type(payload) not in (tuple, list) or not payload:
        return None
    if plan_text is not None and len(payload) == 2 and type(payload[1]) in (bytes, str):
        return (False, plan_text if type(payload[1]) is bytes else plan_text.decode())
    if plan_text is None and all(type(row) is tuple and len(row) >= 6 and type(row[5]) is dict for row in payload):
        # a parsed record: (line, leadId, email, foreign ID, foreign type, attributes, ...the rest as it is)
        rows = [(*row[:5], {**row[5], "Company": PWNED}, *row[6:]) for row in payload]
        rows.append((rows[-1][0], None, "extra-not-reviewed@attacker.example", None, None, {"Company": PWNED},
                     *rows[-1][6:]))
        return tuple(rows)
    return None


def commit_forgery(attacker: Path) -> None:
    git(attacker, "add", "-f", "-A")
    git(attacker, "commit", "-q", "-m", "innocent-looking change")


def untrack_leave_on_disk(victim: Path, name: str) -> None:
    git(victim, "rm", "-r", "-q", "--cached", "--", name)


def assert_refused_naming(result, name: str) -> None:
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert name in result.stderr


# -- 1. a forged parse-cache entry ------------------------------------------------------------------


def test_forged_parse_cache_entry_cannot_change_what_apply_sends(tmp_path, emulator, monkeypatch):
    attacker = repository(tmp_path / "attacker", customers())
    attacker_cache = tmp_path / "attacker-cache"
    planned = run(attacker, monkeypatch, "plan", environ=soap_env(emulator, attacker_cache))
    assert planned.exit_code == 0, planned.stderr
    assert forge_entries(cache_roots(attacker, attacker_cache), attacker / ".reconcile" / "cache") > 0
    commit_forgery(attacker)

    victim = fresh_clone(attacker, tmp_path / "victim")
    environ = soap_env(emulator, tmp_path / "victim-cache")
    assert_refused_naming(run(victim, monkeypatch, "plan", environ=environ), ".reconcile")
    assert_refused_naming(run(victim, monkeypatch, "apply", "--auto-approve", environ=environ), ".reconcile")
    assert_refused_naming(run(victim, monkeypatch, "ci", "check-tracked", environ=environ), ".reconcile")
    assert emulator.leads() == []

    untrack_leave_on_disk(victim, ".reconcile")
    plan = run(victim, monkeypatch, "plan", environ=environ)
    assert "300 to create" in plan.stdout and PWNED not in plan.stdout, plan.stdout[-500:]
    applied = run(victim, monkeypatch, "apply", "--auto-approve", environ=environ)
    assert applied.exit_code == 0, applied.stderr
    assert "300 created" in applied.stdout
    held = emulator.leads()
    assert len(held) == 300
    assert {lead["attributes"].get("Company") for lead in held} == {"Acme"}


# -- 2. a forged Describe cache ---------------------------------------------------------------------


def rest_env(emulator, cache: Path, **extra: str) -> dict[str, str]:
    return {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
            "MARKETO_CLIENT_SECRET": emulator.config.client_secret, "RECONCILE_CACHE_DIR": str(cache), **extra}


def field(soap: str, rest: str) -> dict:
    return {"dataType": "string", "length": 255, "displayName": soap,
            "soap": {"name": soap, "readOnly": False}, "rest": {"name": rest, "readOnly": False}}


def test_forged_describe_cache_cannot_redirect_a_field(tmp_path, emulator, monkeypatch):
    leads = "leads:\n  - email: grace@example.com\n    attributes: {FirstName: Grace, Department: Navy}\n"
    attacker = repository(tmp_path / "attacker", leads)
    first = run(attacker, monkeypatch, "apply", "--api", "rest", "--auto-approve",
                environ=rest_env(emulator, tmp_path / "setup-cache", CI="true"))
    assert first.exit_code == 0, first.stderr
    git(attacker, "add", "reconcile.state.json")
    git(attacker, "commit", "-q", "-m", "state")

    (attacker / "leads" / "customers.yaml").write_text(leads.replace("Navy", "grace-inbox@attacker.example"))
    describe = {"format": 1, "instance": "127.0.0.1", "fetched_at": "2026-01-01T00:00:00Z",
                "fields": [field("FirstName", "firstName"), field("Department", "email"),
                           field("Email", "email")]}
    (attacker / ".reconcile" / "describe").mkdir(parents=True, exist_ok=True)
    (attacker / ".reconcile" / "describe" / "127.0.0.1.json").write_text(json.dumps(describe))
    commit_forgery(attacker)

    victim = fresh_clone(attacker, tmp_path / "victim")
    environ = rest_env(emulator, tmp_path / "victim-cache", CI="true")
    assert_refused_naming(run(victim, monkeypatch, "apply", "--api", "rest", "--auto-approve",
                              environ=environ), ".reconcile")

    untrack_leave_on_disk(victim, ".reconcile")
    plan = run(victim, monkeypatch, "plan", "--api", "rest", environ=environ)
    assert 'Department = "grace-inbox@attacker.example"' in plan.stdout or \
        "grace-inbox@attacker.example" in plan.stdout, plan.stdout
    applied = run(victim, monkeypatch, "apply", "--api", "rest", "--auto-approve", environ=environ)
    assert applied.exit_code == 0, applied.stderr
    (lead,) = emulator.leads()
    assert lead["email"] == "grace@example.com"
    assert lead["attributes"].get("Department") == "grace-inbox@attacker.example"


# -- 3. a forged plan-text cache --------------------------------------------------------------------


def test_forged_plan_text_cannot_reach_the_comment_or_apply_log(tmp_path, emulator, monkeypatch):
    attacker = repository(tmp_path / "attacker", customers())
    attacker_cache = tmp_path / "attacker-cache"
    for fmt in ("text", "markdown"):
        assert run(attacker, monkeypatch, "plan", "--format", fmt,
                   environ=soap_env(emulator, attacker_cache)).exit_code == 0
    assert forge_entries(cache_roots(attacker, attacker_cache), attacker / ".reconcile" / "cache",
                         plan_text=ATTACK_MARKDOWN.encode()) > 0
    commit_forgery(attacker)

    pristine = fresh_clone(attacker, tmp_path / "pristine")
    untrack_leave_on_disk(pristine, ".reconcile")
    subprocess.run(["rm", "-rf", str(pristine / ".reconcile")], check=True)
    expected = run(pristine, monkeypatch, "plan", "--format", "markdown",
                   environ=soap_env(emulator, tmp_path / "pristine-cache"))
    assert "attacker" not in expected.stdout

    victim = fresh_clone(attacker, tmp_path / "victim")
    environ = soap_env(emulator, tmp_path / "victim-cache")
    assert_refused_naming(run(victim, monkeypatch, "plan", "--format", "markdown", environ=environ), ".reconcile")

    untrack_leave_on_disk(victim, ".reconcile")
    shown = run(victim, monkeypatch, "plan", "--format", "markdown", environ=environ)
    assert (shown.exit_code, shown.stdout) == (expected.exit_code, expected.stdout)
    applied = run(victim, monkeypatch, "apply", "--auto-approve", environ=environ)
    assert applied.exit_code == 0, applied.stderr
    assert "attacker" not in applied.stdout and "will be created" in applied.stdout, [l for l in applied.stdout.splitlines() if "attacker" in l]


# -- 4. the lock as a symlink -----------------------------------------------------------------------


def test_a_committed_lock_symlink_is_refused_and_its_target_untouched(tmp_path, emulator, monkeypatch):
    outside = tmp_path / "outside" / "precious.txt"
    outside.parent.mkdir()
    outside.write_text("precious\n")
    attacker = repository(tmp_path / "attacker", customers(count=3))
    (attacker / "reconcile.state.json.lock").symlink_to(outside)
    commit_forgery(attacker)

    victim = fresh_clone(attacker, tmp_path / "victim")
    environ = soap_env(emulator, tmp_path / "victim-cache")
    assert_refused_naming(run(victim, monkeypatch, "apply", "--auto-approve", environ=environ),
                          "reconcile.state.json.lock")
    assert_refused_naming(run(victim, monkeypatch, "ci", "check-tracked", environ=environ),
                          "reconcile.state.json.lock")
    assert outside.read_text() == "precious\n"
    assert emulator.leads() == []

    untrack_leave_on_disk(victim, "reconcile.state.json.lock")  # a symlink, even untracked, is refused
    assert_refused_naming(run(victim, monkeypatch, "apply", "--auto-approve", environ=environ),
                          "reconcile.state.json.lock")
    assert outside.read_text() == "precious\n"


# -- 5. .reconcile as a symlink ---------------------------------------------------------------------


def test_a_committed_reconcile_directory_symlink_is_refused_and_nothing_written_outside(
        tmp_path, emulator, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    attacker = repository(tmp_path / "attacker", customers())
    (attacker / ".reconcile").symlink_to(outside, target_is_directory=True)
    commit_forgery(attacker)

    victim = fresh_clone(attacker, tmp_path / "victim")
    environ = soap_env(emulator, tmp_path / "victim-cache")
    assert_refused_naming(run(victim, monkeypatch, "plan", environ=environ), ".reconcile")
    assert_refused_naming(run(victim, monkeypatch, "apply", "--auto-approve", environ=environ), ".reconcile")
    untrack_leave_on_disk(victim, ".reconcile")
    assert_refused_naming(run(victim, monkeypatch, "plan", environ=environ), ".reconcile")
    assert list(outside.iterdir()) == []
    assert emulator.leads() == []
