"""`--target KEY|FILE` on plan and apply: only those leads are planned and applied, a saved plan keeps
its targets, and a target that names nothing is a usage error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirunner import invoke

from reconcile.inputs import cache
from reconcile.store.state import load_state


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "people.yaml": "leads:\n"
        "  - email: ada@example.com\n    attributes: {FirstName: Ada}\n"
        "  - email: alan@example.com\n    attributes: {FirstName: Alan}\n",
        "partners.yaml": "leads:\n  - email: grace@example.com\n    attributes: {FirstName: Grace}\n",
    })


def recorded(workspace: Path) -> set[str]:
    path = workspace / "reconcile.state.json"
    return set(load_state(path).leads) if path.exists() else set()


def test_plan_with_a_key_target_shows_only_that_lead(workspace: Path) -> None:
    result = invoke("plan", "--compact", "--target", "email:Ada@Example.com", "--detailed-exitcode")
    assert result.exit_code == 2, result.stderr
    assert "+ email:ada@example.com" in result.stdout
    assert "alan@" not in result.stdout and "grace@" not in result.stdout
    assert "Targeted: only email:Ada@Example.com" in result.stdout
    assert "Plan: 1 to create" in result.stdout


def test_plan_with_file_targets_shows_their_leads(workspace: Path) -> None:
    result = invoke("plan", "--format", "json", "--target", "leads/partners.yaml", "--target", "email:alan@example.com")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(action["identity"] for action in data["actions"]) == ["email:alan@example.com",
                                                                       "email:grace@example.com"]
    assert data["targets"] == ["leads/partners.yaml", "email:alan@example.com"]


def test_a_targeted_plan_never_prints_the_cached_full_plan(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)  # small files: cached as large ones are
    full = invoke("plan", "--compact")
    assert full.exit_code == 0 and "Plan: 3 to create" in full.stdout
    for _ in range(2):  # the second time, the full plan's text is in the cache
        targeted = invoke("plan", "--compact", "--target", "email:grace@example.com")
        assert targeted.exit_code == 0, targeted.stderr
        assert "Plan: 1 to create" in targeted.stdout and "ada@" not in targeted.stdout
    assert invoke("plan", "--compact").stdout == full.stdout


def test_apply_with_a_target_applies_only_that_lead(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)  # the full plan's text is cached: apply must not show it
    assert "Plan: 3 to create" in invoke("plan").stdout
    result = invoke("apply", "--emulator", "--auto-approve", "--target", "email:alan@example.com")
    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 1 created" in result.stdout
    assert "ada@" not in result.stdout and "Targeted: only email:alan@example.com" in result.stdout
    assert recorded(workspace) == {"email:alan@example.com"}
    rest = invoke("plan", "--compact")
    assert "Plan: 2 to create" in rest.stdout and "alan@" not in rest.stdout


def test_a_saved_plan_records_its_targets_and_applying_it_uses_them(workspace: Path) -> None:
    saved = invoke("plan", "--out", "targeted.json", "--target", "leads/partners.yaml")
    assert saved.exit_code == 0, saved.stderr
    assert json.loads((workspace / "targeted.json").read_text())["plan"]["targets"] == ["leads/partners.yaml"]
    applied = invoke("apply", "--emulator", "targeted.json")
    assert applied.exit_code == 0, applied.stderr
    assert "Targeted: only leads/partners.yaml" in applied.stdout
    assert recorded(workspace) == {"email:grace@example.com"}


def test_a_saved_plan_keeps_its_own_targets(workspace: Path) -> None:
    assert invoke("plan", "--out", "full.json").exit_code == 0
    result = invoke("apply", "--emulator", "full.json", "--target", "email:ada@example.com")
    assert result.exit_code == 64
    assert "--target cannot be combined with PLAN_FILE" in result.stderr
    assert recorded(workspace) == set()


@pytest.mark.parametrize("target,says", [
    ("email:nobody@example.com", "names no declared lead and no lead in the state"),
    ("leads/missing.yaml", "is neither a state key"),
])
def test_a_target_that_names_nothing_is_a_usage_error(workspace: Path, target: str, says: str) -> None:
    for command in (("plan",), ("apply", "--emulator", "--auto-approve")):
        result = invoke(*command, "--target", target)
        assert result.exit_code == 64, result.stderr
        assert f"--target {target!r} {says}" in result.stderr
    assert recorded(workspace) == set()
