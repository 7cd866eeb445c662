"""`plan` reads the state before the lead files (less memory at a million leads), yet reports as it
always did: the lead files' errors first, then the state's."""

from __future__ import annotations

from pathlib import Path

import pytest

from clirunner import invoke


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace(state="{ not json\n")


def test_a_lead_file_error_is_reported_before_a_broken_state(workspace: Path) -> None:
    (workspace / "leads" / "a.yaml").write_text("leads:\n  - email: not-an-email\n")
    result = invoke("plan")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == "error: leads/a.yaml:2: leads[0].email: 'not-an-email' is not an email address\n"


def test_a_broken_state_is_reported_when_the_lead_files_are_valid(workspace: Path) -> None:
    (workspace / "leads" / "a.yaml").write_text("leads:\n  - email: someone@example.com\n")
    result = invoke("plan")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr.startswith("error: reconcile.state.json")
