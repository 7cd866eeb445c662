"""Planner golden cases, pyinfra style: tests/cases/<name>/ holds the current state
(reconcile.state.json), the desired input (leads/) and the expected actions (plan.txt, plan.json,
plan-compact.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import invoke
from golden import assert_golden

CASES = Path(__file__).parents[1] / "cases"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "leads").is_dir())


@pytest.mark.parametrize("case", CASE_NAMES)
def test_plan_case(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case_dir = CASES / case
    monkeypatch.chdir(case_dir)
    state_before = (case_dir / "reconcile.state.json").read_bytes() if (case_dir / "reconcile.state.json").exists() else None

    text = invoke("plan")
    assert text.exit_code == 0, text.stderr
    assert text.stderr == ""
    assert_golden(text.stdout, case_dir / "plan.txt")

    as_json = invoke("plan", "--format", "json", "--detailed-exitcode")
    plan = json.loads(as_json.stdout)
    # Orphans are reported but apply does nothing about them, so they are not "changes present".
    assert as_json.exit_code == (2 if plan["summary"]["create"] + plan["summary"]["adopt"] + plan["summary"]["update"] else 0)
    assert_golden(as_json.stdout, case_dir / "plan.json")

    compact = invoke("plan", "--compact")
    assert compact.exit_code == 0 and compact.stderr == "", compact.stderr
    assert_golden(compact.stdout, case_dir / "plan-compact.txt")

    after = (case_dir / "reconcile.state.json").read_bytes() if (case_dir / "reconcile.state.json").exists() else None
    assert after == state_before, "plan must never write the state"


def test_every_case_has_expectations() -> None:
    assert len(CASE_NAMES) >= 12
    for case in CASE_NAMES:
        assert (CASES / case / "plan.txt").exists() and (CASES / case / "plan.json").exists(), case
        assert (CASES / case / "plan-compact.txt").exists(), case
