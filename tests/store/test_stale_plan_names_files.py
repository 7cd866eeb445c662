"""A saved plan gone stale because a lead file was edited names that file, not just "edited"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import invoke


@pytest.fixture
def workspace(make_workspace) -> Path:
    root = make_workspace({
        "a.yaml": "leads:\n  - email: a@example.com\n",
        "team/b.yaml": "leads:\n  - email: b@example.com\n",
        "c.yaml": "leads:\n  - email: c@example.com\n",
    })
    assert invoke("plan", "--out", "tfplan.json").exit_code == 0
    return root


def test_the_edited_files_are_named(workspace: Path) -> None:
    (workspace / "leads" / "team" / "b.yaml").write_text("leads:\n  - email: b@example.com\n    attributes: {X: y}\n")
    (workspace / "leads" / "c.yaml").write_text("leads:\n  - email: C@example.com\n")
    result = invoke("apply", "tfplan.json", "--emulator")
    assert result.exit_code == 6, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "error: saved plan is stale: lead files changed (edited leads/c.yaml, leads/team/b.yaml). "
        "Run `reconcile plan` again.")
    assert not (workspace / "reconcile.state.json").exists()


def test_added_removed_and_edited_are_told_apart(workspace: Path) -> None:
    (workspace / "leads" / "a.yaml").unlink()
    (workspace / "leads" / "d.yaml").write_text("leads:\n  - email: d@example.com\n")
    (workspace / "leads" / "c.yaml").write_text("leads:\n  - email: c@example.com\n\n")
    result = invoke("apply", "tfplan.json", "--emulator")
    assert result.exit_code == 6, result.stderr
    assert "lead files changed (added leads/d.yaml; removed leads/a.yaml; edited leads/c.yaml)" in result.stderr


def test_a_plan_saved_without_per_file_digests_still_goes_stale(workspace: Path) -> None:
    saved = json.loads((workspace / "tfplan.json").read_text())
    del saved["inputs"]["lead_file_digests"]
    (workspace / "tfplan.json").write_text(json.dumps(saved))
    (workspace / "leads" / "c.yaml").write_text("leads:\n  - email: C@example.com\n")
    result = invoke("apply", "tfplan.json", "--emulator")
    assert result.exit_code == 6, result.stderr
    assert "lead files changed (edited)" in result.stderr
