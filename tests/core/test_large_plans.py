"""A plan above 1,000 actions: the text starts with the summary and the counts per file and shows a
sample of each kind, saying how to see every action; --full, JSON, Markdown, the compact form and a
saved plan stay complete. Within a file, leads are in natural order (user2 before user10)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clirunner import invoke
from golden import assert_golden

GOLDEN = Path(__file__).parent / "large_plans"
UPDATED = 12  # user0 .. user11 are in the state with another FirstName
CREATES_A, CREATES_B = 1_100 - UPDATED, 100


def write_workspace(root: Path, in_a: int = 1_100) -> None:
    """leads/a.yaml declares user0..user{in_a-1} (the first twelve are updates), leads/b.yaml a hundred
    more in reverse order; the state also holds gone@example.com (an orphan)."""
    (root / "leads").mkdir()
    lead = "  - email: user{0}@example.com\n    attributes: {{FirstName: U{0}}}\n"
    (root / "leads" / "a.yaml").write_text("leads:\n" + "".join(lead.format(i) for i in range(in_a)))
    (root / "leads" / "b.yaml").write_text("leads:\n" + "".join(lead.format(i) for i in range(5099, 4999, -1)))
    records = {f"email:user{i}@example.com": {"attributes": {"FirstName": "Old"}, "email": f"user{i}@example.com",
                                              "foreignSysPersonId": None, "foreignSysType": None, "leadId": 2000 + i,
                                              "syncedAt": "2026-11-01T00:00:00+00:00"} for i in range(UPDATED)}
    records["email:gone@example.com"] = {"attributes": {"FirstName": "Gone"}, "email": "gone@example.com",
                                         "foreignSysPersonId": None, "foreignSysType": None, "leadId": 1999,
                                         "syncedAt": "2026-11-01T00:00:00+00:00"}
    (root / "reconcile.state.json").write_text(json.dumps(
        {"format_version": 1, "leads": records, "lineage": "6b1f1c2e-0000-4000-8000-000000000009", "serial": 1}))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def headers(text: str) -> list[str]:
    return re.findall(r"^  # (\S+) ", text, re.MULTILINE)


def test_a_large_text_plan_starts_with_the_summary_and_shows_a_sample(workspace: Path) -> None:
    result = invoke("plan")
    assert result.exit_code == 0, result.stderr
    assert_golden(result.stdout, GOLDEN / "plan.txt")
    summary = "Plan: 1188 to create, 12 to update, 1 orphaned, 0 unchanged; 4 syncMultipleLeads calls."
    assert result.stdout.startswith(summary + "\n") and result.stdout.rstrip().endswith(summary)
    assert "reconcile plan --full" in result.stdout
    assert len(headers(result.stdout)) == 21  # ten creates, ten updates, the one orphan


def test_full_shows_every_action_in_natural_order_within_each_file(workspace: Path) -> None:
    result = invoke("plan", "--full")
    shown = headers(result.stdout)
    assert len(shown) == CREATES_A + CREATES_B + UPDATED + 1
    creates_a = [s for s in shown[:CREATES_A]]
    assert creates_a[:3] == ["email:user12@example.com", "email:user13@example.com", "email:user14@example.com"]
    assert creates_a.index("email:user99@example.com") < creates_a.index("email:user100@example.com")
    assert shown[CREATES_A] == "email:user5000@example.com"  # b.yaml's, declared last, is shown first
    assert shown[CREATES_A + CREATES_B:CREATES_A + CREATES_B + 3] == [
        "email:user0@example.com", "email:user1@example.com", "email:user2@example.com"]
    assert "--full" not in result.stdout.split("Plan:")[0]


def test_json_markdown_compact_and_saved_plans_stay_complete(workspace: Path) -> None:
    total = CREATES_A + CREATES_B + UPDATED + 1
    as_json = json.loads(invoke("plan", "--format", "json").stdout)
    assert len(as_json["actions"]) == total
    markdown = invoke("plan", "--format", "markdown").stdout
    assert markdown.count("will be created") == CREATES_A + CREATES_B and "--full" not in markdown
    compact = invoke("plan", "--compact").stdout
    assert len(compact.splitlines()) == total + 2  # and the note and the summary
    saved = invoke("plan", "--out", str(workspace.parent / "tfplan.json"))
    assert saved.exit_code == 0, saved.stderr
    assert len(json.loads((workspace.parent / "tfplan.json").read_text())["plan"]["actions"]) == total


@pytest.mark.parametrize("in_a,large", [(899, False), (900, True)])  # 1,000 and 1,001 actions
def test_above_a_thousand_actions_the_text_plan_is_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            in_a: int, large: bool) -> None:
    write_workspace(tmp_path, in_a)  # in_a + 100 + 1 actions (the updates are among the in_a)
    monkeypatch.chdir(tmp_path)
    text = invoke("plan").stdout
    assert ("Too many to show each one" in text) is large
    assert len(headers(text)) == (21 if large else in_a + 101)
