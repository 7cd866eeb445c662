"""A plan assembled from per-file pieces (reconcile.inputs.planpieces) is the plan made from scratch.

The differential test edits random lead files (and sometimes the state) of one workspace, step
after step, and compares every `plan` there (its caches warm: most files come from their pieces)
with the same `plan` in a fresh copy of the inputs with no cache at all: stdout, stderr and exit
status, byte for byte, in every output format, errors included. The other tests take one input the
pieces depend on and check that changing it is never answered from a piece made before.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clirunner import invoke
from reconcile.inputs import cache, planpieces
from reconcile.inputs.fields import save_catalog
from conftest import v1_state

FORMATS = (("plan",), ("plan", "--format", "json"), ("plan", "--compact"), ("plan", "--format", "markdown"),
           ("plan", "--detailed-exitcode"))
EMAILS = [f"lead{i}@example.com" for i in range(14)]


def lead_yaml(lead: dict) -> str:
    lines = []
    for field in ("leadId", "foreignSysPersonId", "email"):
        if field in lead:
            value = lead[field]
            lines.append(f"{field}: {value}" if field == "leadId" else f"{field}: \"{value}\"")
    lines.append("attributes:")
    lines += [f"  {name}: \"{value}\"" for name, value in lead["attributes"].items()]
    return "  - " + "\n    ".join(lines) + "\n"


def write_files(files: dict[str, list[dict]]) -> None:
    leads = Path("leads")
    shutil.rmtree(leads, ignore_errors=True)
    leads.mkdir()
    for name, entries in files.items():
        (leads / name).write_text("leads:\n" + "".join(map(lead_yaml, entries)) if entries else "leads: []\n")


def state_record(i: int, title: str = "CTO", keyed_by: str = "email", lead_id: int | None = None) -> tuple[str, dict]:
    email = EMAILS[i]
    foreign = keyed_by == "foreign"
    record = {"leadId": 100 + i if lead_id is None else lead_id, "email": email,
              "foreignSysPersonId": f"F{i}" if foreign else None, "foreignSysType": "CUSTOM" if foreign else None,
              "syncedAt": None, "attributes": {"Title": title, "Company": f"Company {i % 3}"}}
    key = {"email": f"email:{email}", "foreign": f"fsp:CUSTOM:F{i}", "id": f"id:{100 + i}"}[keyed_by]
    return key, record


def write_state(records: dict[str, dict]) -> None:
    state = v1_state(dict(sorted(records.items())), serial=3)
    Path("reconcile.state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def initial() -> tuple[dict[str, list[dict]], dict[str, dict]]:
    files: dict[str, list[dict]] = {"a.yaml": [], "b.yaml": [], "c.yaml": []}
    for i in range(9):
        lead = {"email": EMAILS[i], "attributes": {"Title": "CTO", "Company": f"Company {i % 3}"}}
        if i == 4:
            lead["foreignSysPersonId"] = "F4"
        files[["a.yaml", "b.yaml", "c.yaml"][i % 3]].append(lead)
    records = dict(state_record(i, keyed_by="foreign" if i == 4 else "email") for i in range(8))
    records.update([state_record(12)])  # no longer declared: an orphan
    return files, records


def outcome(*args: str) -> tuple[int, str, str]:
    result = invoke(*args)
    return result.exit_code, result.stdout, result.stderr


def from_scratch(*args: str) -> tuple[int, str, str]:
    """The same plan in a copy of the inputs with no cache."""
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as fresh:
        shutil.copytree(here / "leads", Path(fresh) / "leads")
        shutil.copy(here / "reconcile.state.json", Path(fresh) / "reconcile.state.json")
        if (here / ".reconcile" / "describe").is_dir():  # an input, not a cache of plans
            shutil.copytree(here / ".reconcile" / "describe", Path(fresh) / ".reconcile" / "describe")
        os.chdir(fresh)
        try:
            return outcome(*args)
        finally:
            os.chdir(here)


@pytest.fixture
def assembled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many plans were assembled from pieces."""
    calls: list[int] = []
    real = planpieces.assemble

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(planpieces, "assemble", spy)
    return calls


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "MIN_FILE_BYTES", 0)
    monkeypatch.chdir(tmp_path)
    files, records = initial()
    write_files(files)
    write_state(records)
    return tmp_path


def apply_edit(edit: tuple, files: dict[str, list[dict]], records: dict[str, dict]) -> None:
    kind, file_index, lead_index, value = edit
    names = sorted(files)
    name = names[file_index % len(names)]
    entries = files[name]
    lead = entries[lead_index % len(entries)] if entries else None
    if kind == "title" and lead is not None:
        lead["attributes"]["Title"] = ["CTO", "CEO", "VP", "Founder"][value % 4]
    elif kind == "drop-attribute" and lead is not None:
        lead["attributes"].pop("Company", None)
    elif kind == "new-attribute" and lead is not None:
        lead["attributes"]["Phone"] = f"650-555-{value:04d}"
    elif kind == "add":  # a new lead, a lead declared twice, or one the state knows under another key
        entries.append({"email": EMAILS[value % len(EMAILS)], "attributes": {"Title": "CTO"}})
    elif kind == "remove" and lead is not None:
        entries.remove(lead)
    elif kind == "move" and lead is not None:
        entries.remove(lead)
        files[names[(file_index + 1) % len(names)]].append(lead)
    elif kind == "lead-id" and lead is not None:  # an adoption, or a Marketo lead declared twice
        lead["leadId"] = 100 + value % 16
    elif kind == "foreign-id" and lead is not None:
        lead["foreignSysPersonId"] = f"F{value % 6}"
    elif kind == "email-case" and lead is not None:
        lead["email"] = lead["email"].upper() if value % 2 else lead["email"].capitalize()
    elif kind == "rename":
        files[f"renamed-{value % 3}.yaml" if f"renamed-{value % 3}.yaml" not in files else "z.yaml"] = files.pop(name)
    elif kind == "state-title":  # an apply recorded a new value
        key = sorted(records)[value % len(records)]
        records[key]["attributes"]["Title"] = "Recorded"
    elif kind == "state-forget":
        records.pop(sorted(records)[value % len(records)])
    elif kind == "state-add":  # by any key; some with the lead ID of another record (a merged lead)
        keyed_by = ["email", "foreign", "id"][value % 3]
        key, record = state_record(value % len(EMAILS), keyed_by=keyed_by,
                                   lead_id=100 + value % 9 if value % 5 == 0 else None)
        records[key] = record


EDITS = st.tuples(st.sampled_from(["title", "drop-attribute", "new-attribute", "add", "remove", "move", "lead-id",
                                   "foreign-id", "email-case", "rename", "state-title", "state-forget", "state-add"]),
                  st.integers(0, 5), st.integers(0, 9), st.integers(0, 99))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(EDITS, st.sampled_from(FORMATS)), min_size=1, max_size=6))
# Marketo lead 105 declared twice: by leadId in a.yaml, and by lead5's record in c.yaml.
@example(edits=[(("state-add", 0, 0, 5), ("plan",)), (("lead-id", 0, 0, 5), ("plan", "--compact"))])
# A state key id:106 whose record says lead 102: declaring leadId 106 changes it.
@example(edits=[(("state-add", 0, 0, 20), ("plan",)), (("lead-id", 0, 2, 6), ("plan", "--compact"))])
def test_random_edits_plan_as_from_scratch(edits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           assembled: list[int]) -> None:
    monkeypatch.setattr(cache, "MIN_FILE_BYTES", 0)
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        monkeypatch.chdir(work)
        files, records = initial()
        write_files(files)
        write_state(records)
        assert outcome("plan") == from_scratch("plan")
        for edit, options in edits:
            apply_edit(edit, files, records)
            write_files(files)
            write_state(records)
            assert outcome(*options) == from_scratch(*options), (edit, options)
            other = FORMATS[(FORMATS.index(options) + 1) % len(FORMATS)]  # the same inputs, another rendering
            assert outcome(*other) == from_scratch(*other), (edit, other)


def test_the_differential_test_takes_the_pieces_path(workspace: Path, assembled: list[int]) -> None:
    """Without this, the test above could pass by always planning from scratch."""
    files, records = initial()
    assert outcome("plan") == from_scratch("plan")
    assert assembled == [], "a first plan is made from scratch"
    for edit in (("title", 0, 1, 1), ("add", 1, 0, 11), ("remove", 2, 0, 0), ("move", 0, 0, 0)):
        apply_edit(edit, files, records)
        write_files(files)
        assembled.clear()
        assert outcome("plan", "--compact") == from_scratch("plan", "--compact")
        assert assembled == [True], edit


def test_one_changed_file_is_the_only_one_parsed(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconcile.inputs import validate

    outcome("plan")
    files, _ = initial()
    files["b.yaml"][0]["attributes"]["Title"] = "Founder"
    write_files(files)
    parsed: list[str] = []
    real = validate.parse_lead_file
    monkeypatch.setattr(validate, "parse_lead_file", lambda text, path: parsed.append(path) or real(text, path))
    result = outcome("plan", "--compact")
    assert parsed == ["leads/b.yaml"]
    assert result == from_scratch("plan", "--compact") and '"CTO" → "Founder"' in result[1]


def test_a_state_change_is_never_answered_from_pieces_of_another_state(workspace: Path,
                                                                      assembled: list[int]) -> None:
    _, first = initial()
    _, second = initial()
    second["email:lead0@example.com"]["attributes"]["Title"] = "Recorded"
    assert "Recorded" not in outcome("plan")[1]
    write_state(second)
    assert 'Title = "Recorded" → "CTO"' in outcome("plan")[1]
    write_state(first)  # back to a state whose lookup is still cached, after pieces of the other were made
    assembled.clear()
    result = outcome("plan", "--compact")
    assert assembled == [True]
    assert result == from_scratch("plan", "--compact") and "Recorded" not in result[1]


def test_a_renamed_file_shows_its_new_name(workspace: Path) -> None:
    outcome("plan")
    files, _ = initial()
    files["a.yaml"][0]["attributes"]["Title"] = "Founder"
    write_files(files)
    outcome("plan")
    os.rename("leads/a.yaml", "leads/d.yaml")
    result = outcome("plan")
    assert result == from_scratch("plan")
    assert "leads/d.yaml" in result[1] and "leads/a.yaml" not in result[1]


def test_a_describe_cache_refuses_what_the_pieces_allowed(workspace: Path) -> None:
    assert outcome("plan")[0] == 0
    entries = [{"id": 1, "displayName": "Company", "dataType": "string", "length": 255,
                "soap": {"name": "Company", "readOnly": False}, "rest": {"name": "company", "readOnly": False}}]
    save_catalog(Path("reconcile.state.json"), "123-abc-456.mktorest.com", entries)
    result = outcome("plan")
    assert result == from_scratch("plan")
    assert result[0] == 3 and "Title" in result[2]


def test_a_schema_change_parses_and_checks_again(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconcile.inputs import validate

    assert outcome("plan")[0] == 0
    strict = json.loads(validate.schema_bytes())
    strict["$defs"]["lead"]["properties"]["attributes"]["maxProperties"] = 1
    monkeypatch.setattr(validate, "schema_bytes", lambda: json.dumps(strict).encode())
    monkeypatch.setattr(validate, "_fast_rules", lambda: None)
    monkeypatch.setattr(validate, "_validator", validate._validator.__wrapped__)
    result = outcome("plan")
    assert result[0] == 3 and "attributes" in result[2]


def test_a_change_to_the_planning_code_is_a_miss(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                 assembled: list[int]) -> None:
    from reconcile.core import planner

    outcome("plan")
    files, _ = initial()
    files["a.yaml"][0]["attributes"]["Title"] = "Founder"
    write_files(files)
    outcome("plan")  # pieces of every file under this code
    edited = workspace / "edited" / "planner.py"
    edited.parent.mkdir()
    edited.write_bytes(Path(planner.__file__).read_bytes() + b"\n# one more line\n")
    monkeypatch.setattr(planner, "__file__", str(edited))
    cache.code_fingerprint.cache_clear()
    planned: list[int] = []
    real = planpieces.plan_file
    monkeypatch.setattr(planpieces, "plan_file", lambda *args: planned.append(1) or real(*args))
    try:
        os.utime("leads/b.yaml")  # a rendered plan is keyed by the code too: only the pieces are asked
        files["b.yaml"][0]["attributes"]["Title"] = "VP"
        write_files(files)
        assert outcome("plan") == from_scratch("plan")
    finally:
        cache.code_fingerprint.cache_clear()
    assert assembled[-1] is True and len(planned) == 3, "no piece made by other code is used"


def test_the_state_lookup_is_ignored_by_git_on_its_own(workspace: Path) -> None:
    """A repository's .gitignore may not name .reconcile/: the lookup's directory says it itself."""
    outcome("plan")
    lookups = workspace / ".reconcile" / "cache" / "state-lookup"
    assert list(lookups.glob("*.lookup")) and (lookups / ".gitignore").read_text().endswith("\n*\n")
