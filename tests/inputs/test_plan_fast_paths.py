"""The plan's fast paths give exactly the plan of the slow path.

A plan with nothing changed is printed from a cached rendering (reconcile.inputs.cache), without
parsing a lead file, reading the state or planning. These tests check that every input it depends
on (a lead file, the state, the schema, the output options) makes it plan again, that the printed
plan is byte for byte the one planned without any cache, and that errors, journals and files edited
while planning never leave a wrong plan behind. Small data: MIN_INPUT_BYTES is lowered to 0.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clirunner import invoke
from reconcile.core import planner
from reconcile.core.render import render_compact, render_json, render_markdown, render_text
from reconcile.inputs import cache, validate
from reconcile.store.state import load_state
from conftest import v1_state

CASES = Path(__file__).parents[1] / "cases"
OPTIONS = (("plan",), ("plan", "--format", "json"), ("plan", "--format", "markdown"), ("plan", "--compact"))


def lead_file(first: int, count: int, title: str = "CTO") -> str:
    return "leads:\n" + "".join(f"  - email: lead{i}@example.com\n    attributes:\n      Title: {title}\n"
                                f"      Company: Company {i % 3}\n" for i in range(first, first + count))


def state_file(path: Path, title: str = "CEO") -> None:
    leads = {f"email:lead{i}@example.com": {
        "leadId": 100 + i, "email": f"lead{i}@example.com", "foreignSysPersonId": None, "foreignSysType": None,
        "syncedAt": None, "attributes": {"Title": title if i == 1 else "CTO", "Company": f"Company {i % 3}"}}
        for i in range(4)}
    leads["email:gone@example.com"] = {"leadId": 99, "email": "gone@example.com", "foreignSysPersonId": None,
                                       "foreignSysType": None, "syncedAt": None, "attributes": {}}
    state = v1_state(leads, serial=3)
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text(lead_file(0, 3))
    (tmp_path / "leads" / "b.yaml").write_text(lead_file(3, 3))
    state_file(tmp_path / "reconcile.state.json")
    return tmp_path


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a plan was made and rendered (not printed from the cache of rendered plans)."""
    from reconcile.app import plan as plan_command

    calls: list[int] = []
    real = plan_command._render

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(plan_command, "_render", spy)
    return calls


def uncached(workspace: Path) -> dict[tuple[str, ...], str]:
    """What each form of the plan must print, planned without any cache."""
    desired = validate.load_desired(Path("leads"))
    result = planner.plan(desired.leads, load_state(workspace / "reconcile.state.json"))
    return {OPTIONS[0]: render_text(result, against_state=True), OPTIONS[1]: render_json(result),
            OPTIONS[2]: render_markdown(result, against_state=True),
            OPTIONS[3]: render_compact(result, against_state=True)}


def printed(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0 and result.stderr == "", result.stderr
    return result.stdout


def assert_cold_then_warm_equal_uncached(workspace: Path, plans: list[int]) -> None:
    expected = uncached(workspace)
    for options in OPTIONS:
        plans.clear()
        assert printed(*options) == expected[options], options
        assert plans == [1], f"{options}: the inputs changed, so it plans again"
        plans.clear()
        assert printed(*options) == expected[options], options
        assert plans == [], f"{options}: nothing changed, so it is printed from the cache"


def test_a_warm_plan_is_the_cold_plan_and_plans_nothing(workspace: Path, plans: list[int]) -> None:
    assert_cold_then_warm_equal_uncached(workspace, plans)


def test_every_golden_case_prints_the_same_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          plans: list[int]) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    for case in sorted(p for p in CASES.iterdir() if (p / "leads").is_dir()):
        work = tmp_path / case.name
        shutil.copytree(case, work)
        monkeypatch.chdir(work)
        for options, golden in ((("plan",), "plan.txt"), (("plan", "--compact"), "plan-compact.txt")):
            plans.clear()
            cold, warm = printed(*options), printed(*options)
            assert cold == warm == (case / golden).read_text(), (case.name, options)
            assert plans == [1], (case.name, options)


def test_an_edit_to_one_file_plans_again(workspace: Path, plans: list[int]) -> None:
    assert_cold_then_warm_equal_uncached(workspace, plans)
    (workspace / "leads" / "b.yaml").write_text(lead_file(3, 3, title="Founder"))
    assert_cold_then_warm_equal_uncached(workspace, plans)
    assert '"Founder"' in printed("plan")


def test_a_renamed_file_plans_again(workspace: Path, plans: list[int]) -> None:
    before = printed("plan")
    (workspace / "leads" / "b.yaml").rename(workspace / "leads" / "c.yaml")
    assert_cold_then_warm_equal_uncached(workspace, plans)
    assert printed("plan") != before


def test_a_state_change_plans_again(workspace: Path, plans: list[int]) -> None:
    assert_cold_then_warm_equal_uncached(workspace, plans)
    state_file(workspace / "reconcile.state.json", title="CTO")
    assert_cold_then_warm_equal_uncached(workspace, plans)
    assert '"CEO"' not in printed("plan")


def test_a_removed_state_plans_again(workspace: Path, plans: list[int]) -> None:
    printed("plan")
    (workspace / "reconcile.state.json").unlink()
    plans.clear()
    assert "Plan: 6 to create" in printed("plan")
    assert plans == [1]


def test_a_schema_change_plans_again(workspace: Path, monkeypatch: pytest.MonkeyPatch, plans: list[int]) -> None:
    printed("plan")
    changed = validate.schema_bytes().replace(b'"leads"', b'"leads" ', 1)
    monkeypatch.setattr(validate, "schema_bytes", lambda: changed)
    monkeypatch.setattr(validate, "_fast_rules", lambda: None)
    plans.clear()
    printed("plan")
    assert plans == [1]


def test_color_is_part_of_the_key(workspace: Path, plans: list[int]) -> None:
    plain = printed("plan")
    coloured = invoke("plan", environ={"TERM": "xterm"}, tty=True)
    assert coloured.exit_code == 0 and "\x1b[" in coloured.stdout and "\x1b[" not in plain
    assert printed("plan") == plain


def test_the_detailed_exit_code_comes_back_with_a_cached_plan(workspace: Path, plans: list[int]) -> None:
    assert [invoke("plan", "--detailed-exitcode").exit_code for _ in range(2)] == [2, 2]
    assert plans == [1]
    in_sync = {f"email:lead{i}@example.com": {
        "leadId": 100 + i, "email": f"lead{i}@example.com", "foreignSysPersonId": None, "foreignSysType": None,
        "syncedAt": None, "attributes": {"Title": "CTO", "Company": f"Company {i % 3}"}} for i in range(6)}
    (workspace / "reconcile.state.json").write_text(json.dumps(
        v1_state(in_sync, serial=4)))
    assert [invoke("plan", "--detailed-exitcode").exit_code for _ in range(2)] == [0, 0]
    assert plans == [1, 1]


def test_errors_are_reported_on_every_run(workspace: Path, plans: list[int]) -> None:
    printed("plan")
    (workspace / "leads" / "z.yaml").write_text(lead_file(5, 1))
    for _ in range(2):
        result = invoke("plan")
        assert result.exit_code == 3
        assert "duplicate lead email:lead5@example.com" in result.stderr


def test_a_journal_always_plans(workspace: Path, plans: list[int]) -> None:
    printed("plan")
    printed("plan")
    begin = {"type": "begin", "version": 1, "lineage": "0c1d2e3f-0000-4000-8000-000000000000", "serial": 3,
             "started": "2026-01-01T00:00:00+00:00", "dedup": True}
    (workspace / "reconcile.state.json.journal").write_text(json.dumps(begin) + "\n")
    plans.clear()
    result = invoke("plan")
    assert (result.exit_code, result.stderr) == (0, "")
    assert plans == [1], "a journal is replayed (read-only) by every plan"


def test_a_file_edited_while_it_is_read_is_never_cached_under_the_old_bytes(
        workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edited = workspace / "leads" / "a.yaml"
    original = edited.read_text()
    real = validate.load_desired

    def load_after_an_edit(*args, **kwargs):  # after the key hashed the original bytes
        edited.write_text(lead_file(0, 3, title="Edited"))
        return real(*args, **kwargs)

    monkeypatch.setattr(validate, "load_desired", load_after_an_edit)
    assert '"Edited"' in printed("plan")
    monkeypatch.setattr(validate, "load_desired", real)
    edited.write_text(original)  # back to the bytes the key was made from
    assert printed("plan") == uncached(workspace)[OPTIONS[0]]


@pytest.mark.parametrize("value, shown", [
    ('say "hi"', r'"say \"hi\""'), ("C:\\temp", r'"C:\\temp"'), ("a##[b", r'"a##\x5bb"'),
    ("line\nbreak", r'"line\nbreak"'), ("tab\there", r'"tab\there"'), ("del\x7f", r'"del\x7f"'),
    ("bidi\u202e", r'"bidi\u202e"'), ("nbsp\xa0x", '"nbsp\xa0x"'), ("Zoë ✓", '"Zoë ✓"'), ("", '""'),
])
def test_values_are_quoted_and_escaped_in_every_row(value: str, shown: str) -> None:
    from reconcile.core.model import Lead, State
    from reconcile.errors import Location

    leads = [Lead(location=Location("leads/a.yaml", 2 + i), email=f"lead{i}@example.com",
                  attributes={"Notes": value, "Title": "CTO"}) for i in range(2)]
    text = render_text(planner.plan(leads, State(lineage="x", serial=1, leads={})))
    assert text.count(f"      + Notes = {shown}\n") == 2, text
    assert text.count('      + Title = "CTO"\n') == 2, text


def test_compact_is_a_text_format(workspace: Path) -> None:
    result = invoke("plan", "--compact", "--format", "json")
    assert result.exit_code == 64
    assert "--compact is a text format" in result.stderr and result.stdout == ""


def test_an_edit_that_keeps_size_and_mtime_is_seen(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                   plans: list[int]) -> None:
    edited = workspace / "leads" / "b.yaml"
    before = edited.stat()
    printed("plan")
    edited.write_text(lead_file(3, 3, title="CFO"))  # same size
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert edited.stat().st_size == before.st_size and edited.stat().st_mtime_ns == before.st_mtime_ns
    expected = uncached(workspace)[OPTIONS[0]]
    plans.clear()
    assert printed("plan") == expected and '"CFO"' in expected
    assert plans == [1]


def test_a_sharded_state_edited_after_being_remembered_plans_again(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   plans: list[int]) -> None:
    from reconcile.store.state import write_state

    state = workspace / "reconcile.state.json"
    write_state(state, load_state(state))  # format 2: a top file and shards
    assert list((workspace / "reconcile.state.d").glob("*.jsonl"))
    for edit in ("CEO", "CFO", "CEO"):
        current = load_state(state)
        lead = current.leads["email:lead1@example.com"]
        leads = {**current.leads, "email:lead1@example.com": type(lead)(
            lead.lead_id, lead.email, None, None, {**lead.attributes, "Title": edit}, None)}
        write_state(state, type(current)(current.lineage, current.serial + 1, leads))
        expected = uncached(workspace)[OPTIONS[0]]
        assert f'"{edit}"' in expected
        plans.clear()
        assert printed("plan") == printed("plan") == expected, edit
        assert plans == [1], edit


def test_only_the_latest_rendered_plans_are_kept(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconcile.inputs.cache import PlanCache, workspace_dir

    monkeypatch.setattr(PlanCache, "MAX_PLANS", 2)
    plans_dir = workspace_dir(workspace / "reconcile.state.json", {}) / "plans"
    for title in ("A", "B", "C", "D"):
        (workspace / "leads" / "b.yaml").write_text(lead_file(3, 3, title=title))
        printed("plan")
    assert len(list(plans_dir.glob("*.entry"))) == 2


_NAMES = st.sampled_from(["FirstName", "LastName", "Title", "Company"])
_VALUES = st.none() | st.sampled_from(["FirstName", "LastName", "CTO", "Acme", ""])


@settings(max_examples=200, deadline=None)
@given(leads=st.lists(st.dictionaries(_NAMES, _VALUES, max_size=4), min_size=1, max_size=6))
def test_the_changes_of_creates_are_shared_yet_each_what_the_lead_declares(leads):
    """Creates share their AttributeChange objects by (name, value): each lead must still get exactly
    its own, in name order, whatever names and values (or name orders) the leads before it had."""
    orders, shared = {}, {}
    for attributes in leads:
        assert planner._changes_of_a_create(attributes, orders, shared) == planner._attribute_changes(attributes, {})
