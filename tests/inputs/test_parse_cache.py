"""The parse cache (reconcile.inputs.cache) is safe: a plan with the cache gives exactly the plan
without it (warm, cold and uncached, for every golden case, and for an apply after a plan); any edit,
schema change, runtime or package change is a miss, while a renamed file keeps its entry; a corrupt,
truncated or foreign entry is ignored and rebuilt; files with errors and invalid states are never
cached, duplicates across cached files are found on every run; an unwritable cache never stops a
plan; small inputs are not cached and old entries are pruned. Small data: MIN_INPUT_BYTES is lowered
to 0.
"""

from __future__ import annotations

import json
import marshal
import os
import re
import shutil
from pathlib import Path

import pytest

import reconcile
from clirunner import invoke
from reconcile.inputs import cache
from reconcile.inputs import validate
from reconcile.core.planner import plan
from reconcile.core.render import render_json, render_text
from reconcile.store.state import load_state
from conftest import v1_state

CASES = Path(__file__).parents[1] / "cases"


def lead_file(first: int, count: int, title: str = "CTO") -> str:
    rows = []
    for i in range(first, first + count):
        key = f'  - foreignSysPersonId: "{i:06d}"\n    foreignSysType: SFDC\n' if i % 3 == 0 else ""
        rows.append(f"{key}  {'  ' if key else '- '}email: Lead{i}@Example.com\n"
                    f"    attributes:\n      Company: Company {i % 7}\n      Title: {title}\n"
                    f"      Zip: 0{i:04d}\n      Opt: no\n      Phone: ~\n")
    return "leads:\n" + "".join(rows)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three lead files and a state that knows some of the leads; every file big enough to cache."""
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    monkeypatch.chdir(tmp_path)
    leads = tmp_path / "leads"
    (leads / "sub").mkdir(parents=True)
    (leads / "a.yaml").write_text(lead_file(0, 10))
    (leads / "b.yml").write_text(lead_file(10, 10))
    (leads / "sub" / "c.yaml").write_text(lead_file(20, 10))
    state = v1_state({
        "email:lead1@example.com": {"leadId": 11, "email": "lead1@example.com", "foreignSysPersonId": None,
                                    "foreignSysType": None, "syncedAt": "2026-01-01T00:00:00+00:00",
                                    "attributes": {"Company": "Company 1", "Title": "CEO"}},
        "fsp:SFDC:000003": {"leadId": 13, "email": "lead3@example.com", "foreignSysPersonId": "000003",
                            "foreignSysType": "SFDC", "syncedAt": None,
                            "attributes": {"Company": "Company 3", "Title": "CTO", "Zip": "00003", "Opt": "no",
                                           "Phone": None}},
        "email:gone@example.com": {"leadId": 99, "email": "gone@example.com", "foreignSysPersonId": None,
                                   "foreignSysType": None, "syncedAt": None, "attributes": {}}}, serial=3)
    (tmp_path / "reconcile.state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return tmp_path


def cache_dir(workspace: Path) -> Path:
    return cache.workspace_dir(workspace / "reconcile.state.json", {})


def entries(workspace: Path) -> list[Path]:
    """The entries of parsed lead files and of the parsed state."""
    return sorted([*cache_dir(workspace).glob("leads/*.entry"), *cache_dir(workspace).glob("states/*.entry")])


def count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every lead file parsed from YAML (a cache miss)."""
    parsed: list[str] = []
    real = validate.parse_lead_file

    def spy(text: str, path: str):
        parsed.append(path)
        return real(text, path)

    monkeypatch.setattr(validate, "parse_lead_file", spy)
    return parsed


def plan_outputs() -> tuple[str, str]:
    text = invoke("plan", "--detailed-exitcode")
    as_json = invoke("plan", "--format", "json")
    assert text.stderr == "" and as_json.stderr == "", text.stderr + as_json.stderr
    return text.stdout, as_json.stdout


def uncached_outputs(workspace: Path) -> tuple[str, str]:
    desired = validate.load_desired(Path("leads"))
    current = load_state(workspace / "reconcile.state.json")
    result = plan(desired.leads, current)
    return render_text(result, against_state=True), render_json(result)


# --- the cache -------------------------------------------------------------------------------------

def test_warm_plan_parses_nothing_and_plans_the_same(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = uncached_outputs(workspace)
    parsed = count_parses(monkeypatch)
    cold = plan_outputs()
    assert sorted(set(parsed)) == ["leads/a.yaml", "leads/b.yml", "leads/sub/c.yaml"]
    assert len(entries(workspace)) == 4, "one entry per lead file, one for the state"
    parsed.clear()
    warm = plan_outputs()
    assert parsed == [], "an unchanged file is not parsed again"
    assert cold == warm == expected


def test_every_golden_case_plans_the_same_cold_warm_and_uncached(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    for case in sorted(p for p in CASES.iterdir() if (p / "leads").is_dir()):
        work = tmp_path / case.name
        shutil.copytree(case, work)
        monkeypatch.chdir(work)
        expected = uncached_outputs(work) if (work / "reconcile.state.json").exists() else None
        cold, warm = plan_outputs(), plan_outputs()
        assert cold == warm, case.name
        assert cold[0] == (case / "plan.txt").read_text(), case.name
        if expected is not None:
            assert cold == expected, case.name
        assert entries(work), case.name


def test_an_edited_file_is_parsed_again(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan_outputs()
    parsed = count_parses(monkeypatch)
    b = workspace / "leads" / "b.yml"
    before = b.stat()
    # Same size, same modification time: only the content says it changed.
    b.write_text(lead_file(10, 10).replace("Title: CTO", "Title: CFO", 1))
    os.utime(b, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert b.stat().st_size == before.st_size
    text, _ = plan_outputs()
    assert sorted(set(parsed)) == ["leads/b.yml"]
    assert re.search(r'\+ Title +=  ?"CFO"', text), text  # lead 10 is new: created with the new title
    assert (text, _) == uncached_outputs(workspace)


def test_apply_after_a_plan_parses_no_file_again_and_sends_what_the_files_say(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    monkeypatch.chdir(tmp_path)
    def leads(first: int, title: str) -> str:  # attributes the emulator's instance has
        return "leads:\n" + "".join(f"  - email: Lead{i}@Example.com\n    attributes:\n      Company: C{i}\n"
                                     f"      Title: {title}\n" for i in range(first, first + 5))

    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "a.yaml").write_text(leads(0, "CTO"))
    (tmp_path / "leads" / "b.yaml").write_text(leads(5, "CTO"))
    assert invoke("plan").exit_code == 0
    parsed = count_parses(monkeypatch)
    (tmp_path / "leads" / "b.yaml").write_text(leads(5, "CFO"))  # edited after the plan
    applied = invoke("apply", "--emulator", "--auto-approve")
    assert applied.exit_code == 0, applied.stderr
    assert parsed == ["leads/b.yaml"], "the unchanged file comes from plan's parse, the edited one is read"
    database = json.loads((cache_dir(tmp_path) / "emulator-db.json").read_text())
    titles = {lead["email"]: lead["attributes"].get("Title") for lead in database["leads"]}
    assert titles["Lead4@Example.com"] == "CTO" and titles["Lead5@Example.com"] == "CFO"
    assert invoke("plan", "--detailed-exitcode").exit_code == 0


def test_a_renamed_file_keeps_its_entry_and_reports_its_new_name(workspace: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    plan_outputs()
    (workspace / "leads" / "b.yml").rename(workspace / "leads" / "renamed.yaml")
    parsed = count_parses(monkeypatch)
    outputs = plan_outputs()
    assert parsed == []
    assert "leads/renamed.yaml:" in outputs[0] and "leads/b.yml" not in outputs[0]
    assert outputs == uncached_outputs(workspace)


def test_a_schema_change_is_a_miss(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = plan_outputs()
    parsed = count_parses(monkeypatch)
    changed = validate.schema_bytes().replace(b'"title": "reconcile lead file"', b'"title": "lead file"')
    assert changed != validate.schema_bytes()
    monkeypatch.setattr(validate, "schema_bytes", lambda: changed)
    monkeypatch.setattr(validate, "_fast_rules", lambda: None)  # the pinned fast check is off for it
    assert plan_outputs() == expected
    assert len(set(parsed)) == 3, "every file parsed again under the new schema"


def test_another_runtime_is_a_miss(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = plan_outputs()
    parsed = count_parses(monkeypatch)
    monkeypatch.setattr(cache, "runtime_versions", lambda: "another Python, other libraries")
    assert plan_outputs() == expected
    assert len(set(parsed)) == 3, "every file parsed again under another runtime"


def test_the_key_covers_every_input(tmp_path: Path) -> None:
    base = cache.Inputs(b"\x01" * 32, b"schema", {"format": "text"}, "api=rest")
    others = [cache.Inputs(b"\x02" * 32, b"schema", {"format": "text"}, "api=rest"),
              cache.Inputs(b"\x01" * 32, b"schema2", {"format": "text"}, "api=rest"),
              cache.Inputs(b"\x01" * 32, b"schema", {"format": "json"}, "api=rest"),
              cache.Inputs(b"\x01" * 32, b"schema", {"format": "text", "target": "x"}, "api=rest"),
              cache.Inputs(b"\x01" * 32, b"schema", {"format": "text"}, "api=soap")]
    keys = {cache.key(inputs) for inputs in [base, *others]}
    assert len(keys) == 1 + len(others)


@pytest.mark.parametrize("name", ["inputs/leadfiles.py", "inputs/cache.py", "core/render.py", "core/planner.py",
                                  "emulator/store.py", "schemas/leads.schema.json"])
def test_a_change_to_any_file_of_the_package_is_a_miss(name: str, workspace: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit to any file of the installed package (even in an editable install, with the version
    unchanged) must not be answered from entries the old code made: no list of modules to keep."""
    expected = plan_outputs()
    package = Path(reconcile.__file__).parent
    copy = workspace / "edited" / "reconcile"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / name, "ab") as handle:
        handle.write(b"\n")
    monkeypatch.setattr(cache, "__file__", str(copy / "inputs" / "cache.py"))
    cache.package_fingerprint.cache_clear()
    parsed = count_parses(monkeypatch)
    try:
        assert plan_outputs() == expected
    finally:
        cache.package_fingerprint.cache_clear()
    assert sorted(set(parsed)) == ["leads/a.yaml", "leads/b.yml", "leads/sub/c.yaml"], "every file parsed again"


def _corruptions(data: bytes, other: bytes) -> dict[str, bytes]:
    header = cache._HEADER
    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    wrong_shape = marshal.dumps((1, 2, 3))
    well_formed_but_wrong = data[:len(cache._MAGIC) + 32] + cache._checksum(wrong_shape) + wrong_shape
    not_a_tuple = marshal.dumps([1])
    tuple_less = data[:len(cache._MAGIC) + 32] + cache._checksum(not_a_tuple) + not_a_tuple
    return {"empty": b"", "truncated header": data[:header - 1], "truncated payload": data[:len(data) // 2],
            "flipped byte": bytes(flipped), "garbage": os.urandom(len(data)), "foreign": other,
            "other magic": b"X" + data[1:], "checksummed wrong shape": well_formed_but_wrong,
            "checksummed list": tuple_less}


@pytest.mark.parametrize("kind", ["empty", "truncated header", "truncated payload", "flipped byte", "garbage",
                                  "foreign", "other magic", "checksummed wrong shape", "checksummed list"])
def test_a_corrupt_entry_is_ignored_and_rebuilt(kind: str, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = plan_outputs()

    def every_entry() -> list[Path]:  # the rendered plans' too
        return sorted(cache_dir(workspace).rglob("*.entry"))

    files = {path: path.read_bytes() for path in every_entry()}
    paths = sorted(files, key=lambda p: files[p])
    for index, path in enumerate(paths):  # every entry, the state's and the rendered plans' too
        other = files[paths[index - 1]]
        path.write_bytes(_corruptions(files[path], other)[kind])
    parsed = count_parses(monkeypatch)
    assert plan_outputs() == expected
    assert len(set(parsed)) == 3
    assert {path: path.read_bytes() for path in every_entry()} == files, "rebuilt as it was"


def test_files_with_errors_are_never_cached(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workspace / "leads" / "b.yml").write_text(lead_file(10, 10) + "  - email: not-an-email\n")
    for _ in range(2):
        result = invoke("plan")
        assert result.exit_code == 3
        assert result.stderr == "error: leads/b.yml:78: leads[10].email: 'not-an-email' is not an email address\n"
    stored = {path.name for path in entries(workspace)}
    assert len(stored) == 3, "the two other lead files and the state (read first, reported after them)"
    parsed = count_parses(monkeypatch)
    assert invoke("plan").exit_code == 3
    assert parsed == ["leads/b.yml"]


def test_duplicates_across_cached_files_are_found_on_every_run(workspace: Path) -> None:
    (workspace / "leads" / "z.yaml").write_text(lead_file(5, 1))
    for _ in range(2):
        result = invoke("plan")
        assert result.exit_code == 3
        assert result.stderr == ("error: leads/z.yaml:2: duplicate lead email:lead5@example.com: "
                                 "already declared at leads/a.yaml:41\n")


def test_an_invalid_state_is_never_cached(workspace: Path) -> None:
    plan_outputs()
    state = workspace / "reconcile.state.json"
    state.write_text(state.read_text().replace('"leadId": 11', '"leadId": -11'))
    for _ in range(2):
        result = invoke("plan")
        assert result.exit_code == 3
        assert result.stderr == ("error: reconcile.state.json: state lead 'email:lead1@example.com': "
                                 "leadId must be a positive integer or null\n")


def test_an_edited_state_is_read_again(workspace: Path) -> None:
    plan_outputs()
    state = workspace / "reconcile.state.json"
    state.write_text(state.read_text().replace('"Title": "CEO"', '"Title": "CTO"'))
    outputs = plan_outputs()
    assert outputs == uncached_outputs(workspace)
    assert '"CEO"' not in outputs[0]


def test_an_unwritable_cache_never_stops_a_plan(workspace: Path) -> None:
    expected = uncached_outputs(workspace)
    cache_dir(workspace).parent.mkdir(parents=True)
    cache_dir(workspace).write_text("not a directory")
    assert plan_outputs() == expected
    assert plan_outputs() == expected


def test_small_inputs_are_not_cached(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 10**9)
    plan_outputs()
    assert not cache_dir(workspace).exists(), "nothing worth caching: nothing written"


def test_old_entries_are_pruned(tmp_path: Path) -> None:
    store = cache.Cache(tmp_path / "c", max_entries=3)
    for n in range(6):
        store.put(bytes([n]) * 32, ((n,),))
        os.utime(store._path(bytes([n]) * 32)[1], (1000 + n, 1000 + n))
    store.prune()
    kept = sorted(p.name for p in (tmp_path / "c").glob("*.entry"))
    assert kept == sorted(store._path(bytes([n]) * 32)[1].name for n in (3, 4, 5))
    assert store.get(bytes([5]) * 32) == ((5,),)
    assert store.get(bytes([0]) * 32) is None


def test_files_hash_still_hashes_every_files_bytes(workspace: Path) -> None:
    first = validate.load_desired(Path("leads"), cache_dir=cache_dir(workspace))
    warm = validate.load_desired(Path("leads"), cache_dir=cache_dir(workspace))
    uncached = validate.load_desired(Path("leads"))
    files = validate.read_lead_files(Path("leads"))
    assert first.files_hash == warm.files_hash == uncached.files_hash == validate.files_hash(files)
    assert first.leads == warm.leads == uncached.leads
    (workspace / "leads" / "a.yaml").write_text(lead_file(0, 10) + "\n")
    assert validate.load_desired(Path("leads"), cache_dir=cache_dir(workspace)).files_hash != first.files_hash
