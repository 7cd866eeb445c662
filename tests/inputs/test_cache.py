"""The parse cache (reconcile.inputs.cache) is safe, and the fast paths behind a cold plan agree with the
reference paths that word every error.

Cache: a plan with the cache gives exactly the plan without it; any edit, schema change or version
change is a miss; a corrupt, truncated or foreign entry is ignored and rebuilt; files with errors are
never cached; an unwritable cache never stops a plan. Small data: MIN_INPUT_BYTES is lowered to 0.
"""

from __future__ import annotations

import json
import marshal
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reconcile
from clirunner import invoke
from reconcile.inputs import cache
from reconcile.inputs import leadfiles
from reconcile.inputs import validate
from reconcile.errors import InputError
from reconcile.core.planner import plan
from reconcile.core.render import render_json, render_text
from reconcile.store.state import load_state
from conftest import v1_state

CASES = Path(__file__).parents[1] / "cases"
BAD_INPUTS = Path(__file__).parents[1] / "bad_inputs"
EXAMPLES = Path(__file__).parents[2] / "leads"


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


# --- the fast paths agree with the reference paths --------------------------------------------------

def test_the_fast_schema_check_is_on_for_the_shipped_schema() -> None:
    """It is pinned to the schema's hash: after editing the schema, review SchemaCheck and re-pin."""
    assert validate.fast_check_enabled()
    assert (Path(__file__).parents[2] / "schemas" / "leads.schema.json").read_bytes() == validate.schema_bytes()


def _corpus() -> list[Path]:
    files = sorted(BAD_INPUTS.glob("*.yaml")) + sorted(CASES.glob("*/leads/**/*.yaml"))
    return files + sorted(EXAMPLES.glob("**/*.yaml"))


def _outcome(parse, text: str):
    try:
        result = parse(text, "f.yaml")
    except InputError as exc:
        return ("error", str(exc.location), exc.message)
    return ("ok", result)


def _utf8(path: Path) -> bool:
    try:
        path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:  # rejected before parsing: nothing for the two paths to disagree on
        return False
    return True


@pytest.mark.parametrize("path", [p for p in _corpus() if _utf8(p)], ids=lambda p: p.name)
def test_fast_yaml_path_matches_the_reference_on_the_corpus(path: Path) -> None:
    text = path.read_bytes().decode("utf-8-sig")
    assert _outcome(leadfiles.parse_lead_file, text) == _outcome(leadfiles.parse_lead_file_reference, text)


@pytest.mark.parametrize("path", [p for p in _corpus() if _utf8(p)], ids=lambda p: p.name)
def test_the_corpus_reads_the_same_without_libyaml(path: Path) -> None:
    text = path.read_bytes().decode("utf-8-sig")
    assert _without_libyaml(leadfiles.parse_lead_file, text) == _outcome(leadfiles.parse_lead_file, text)


SCALARS = ["Jane", "01234", "0x1F", "1e3", "1_000", "12:30", "2024-01-01", "no", "yes", "on", "off", "y",
           "true", "True", "FALSE", "null", "Null", "~", "", "NULL", ".inf", "-.5", "+1", "007", "1090240",
           "-5", "a@b.co", "a b", "a: b", "a #b", "a#b", "- x", "? x", "[x]", "{x: 1}", "&a x", "*a", "!x y",
           "!!str 5", "!!int 5", "! x", "!!python/object:os.system x", '"quoted"', "'single'",
           '"tab\\there"', '"bell\\a"', '"nul\\0"', '"\\uFFFE"', "'it''s'", "|\n  block\n", ">-\n  folded\n  text\n",
           "é", "日本", "a\u2028b", "%x", "@x", "`x", "x,y", "x\t", " lead", "<<", "=", "'<<'",
           # libyaml and PyYAML read these differently (in flow collections, after block indicators)
           "https://x.com/?a=1", "Why?", "a?b", "?", ">-#c", ">-#c\n  text\n", "|#c\n  text\n", "|2-#c\n  text\n",
           "'?'", "a:b", "a:", "[a?]"]
KEYS = ["email", "leadId", "foreignSysPersonId", "foreignSysType", "attributes", "colour", "Company", "<<",
        "'leadId'", "Email", "Zip", "? complex", "[a]", '"quoted key"', "a b", ""]


@st.composite
def yaml_documents(draw) -> str:
    lines = [draw(st.sampled_from(["leads:", "leads:", "'leads':", "leads: []", "- leads:", "other: 1\nleads:",
                                   "---\nleads:", "leads: &L", "leads: !!seq"]))]
    for _ in range(draw(st.integers(0, 4))):
        indent = draw(st.sampled_from(["  ", "", "    "]))
        fields = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(SCALARS)), min_size=0, max_size=4))
        if not fields:
            lines.append(f"{indent}- {draw(st.sampled_from(SCALARS))}")
            continue
        for index, (key, value) in enumerate(fields):
            prefix = f"{indent}- " if index == 0 else f"{indent}  "
            if key == "attributes" and draw(st.booleans()):
                attrs = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(SCALARS)), max_size=3))
                if draw(st.booleans()):
                    lines.append(prefix + "attributes: {" + ", ".join(f"{k}: {v}" for k, v in attrs) + "}")
                else:
                    lines.append(prefix + "attributes:")
                    lines.extend(f"{indent}    {k}: {v}" for k, v in attrs)
            else:
                lines.append(f"{prefix}{key}: {value}")
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["# comment", "  # indented comment", "", "...", "---", "\t"])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_documents())
def test_fast_yaml_path_matches_the_reference(text: str) -> None:
    assert _outcome(leadfiles.parse_lead_file, text) == _outcome(leadfiles.parse_lead_file_reference, text)


def _without_libyaml(parse, text: str):
    """`parse(text)` as if PyYAML had been built without libyaml."""
    pure = leadfiles.yaml_parsers(libyaml=False)
    assert pure.c_nodes is None and pure.events is pure.pure_events
    return _outcome(lambda text, path: parse(text, path, pure), text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_documents())
def test_results_do_not_depend_on_libyaml(text: str) -> None:
    """Without libyaml the fast path runs on the pure-Python parser's events; with or without it,
    every file gives the same leads or the same error."""
    with_libyaml = _outcome(leadfiles.parse_lead_file, text)
    assert _without_libyaml(leadfiles.parse_lead_file, text) == with_libyaml
    assert _without_libyaml(leadfiles.parse_lead_file_reference, text) == with_libyaml


@pytest.mark.parametrize("text, expected", [
    # libyaml accepts a tab after a value and a byte order mark past the start; PyYAML does not
    ("leads:\n  - email: a@b.co\t\n", ("f.yaml:2", "invalid YAML: found character '\\t' that cannot start any "
                                                   "token; use spaces for indentation, not tabs")),
    ("leads: []\n\ufeff\n", ("f.yaml:3", "invalid YAML: could not find expected ':'")),
    ("leads:\n  - email: a@b.co\n    attributes: {Company: Ac\x07me}\n",
     ("f.yaml:3", "invalid YAML: unacceptable character #x0007: special characters are not allowed")),
    # libyaml reads '?' in a flow collection as text, and allows a comment glued to >- ; PyYAML does not
    ("leads:\n  - email: a@b.co\n    attributes: {Website: https://x.com/?a=1}\n",
     ("f.yaml:3", "invalid YAML: expected ',' or '}', but got '?'; quote text that holds '?' inside { } or [ ]")),
    ("leads:\n  - email: a@b.co\n    attributes: {Notes: Why?}\n",
     ("f.yaml:3", "invalid YAML: expected ',' or '}', but got '?'; quote text that holds '?' inside { } or [ ]")),
    ("leads:\n  - email: a@b.co\n    attributes:\n      Notes: >-#c\n        text\n",
     ("f.yaml:4", "invalid YAML: expected chomping or indentation indicators, but found '#'; put a space before "
                  "the comment")),
])
def test_what_libyaml_alone_would_accept_is_refused(text: str, expected: tuple) -> None:
    assert _outcome(leadfiles.parse_lead_file, text) == ("error", *expected)
    assert _without_libyaml(leadfiles.parse_lead_file, text) == ("error", *expected)


TEXTS = ["Jane", "", " ", "a b", " lead", "lead ", "x\n", "\n", "a\x07b", "\x1f", "\ufffe", "\t", "a\tb", "\x85",
         "a@b.co", "a@b.co\n", "a b@c.de", "a@b@c.de", "a@b.c.", "@b.co", "a@.co", "a@b", "é@é.é", "x" * 256,
         "a@" + "b" * 250 + ".co", "SFDC", "CUSTOM", "NETSUITE", "sfdc", "01234", "Email", "Id", "\u2028"]
VALUES = st.one_of(st.sampled_from(TEXTS), st.none(), st.sampled_from([0, 1, -1, 2147483647, 2147483648, True]),
                   st.just([]), st.just({}), st.just(["x"]), st.just({"a": "b"}), st.floats(allow_nan=False))


@st.composite
def documents(draw):
    """Mostly-valid lead documents with one or two things off (or none)."""
    def lead():
        entry = {}
        for field in draw(st.sets(st.sampled_from(["leadId", "email", "foreignSysPersonId", "foreignSysType",
                                                   "attributes", "other"]))):
            if field == "attributes":
                entry[field] = draw(st.one_of(
                    st.dictionaries(st.sampled_from(TEXTS), st.one_of(st.sampled_from(TEXTS), st.none()), max_size=4),
                    VALUES))
            elif field == "leadId":
                entry[field] = draw(st.one_of(st.integers(-2, 2**31 + 1), VALUES))
            else:
                entry[field] = draw(VALUES)
        return entry

    leads = [lead() for _ in range(draw(st.integers(0, 3)))]
    return draw(st.sampled_from([{"leads": leads}, {"leads": leads}, {"leads": leads, "x": 1}, {}, leads, None,
                                 {"leads": {}}, {"leads": None}]))


@settings(max_examples=500, deadline=None)
@given(document=documents())
def test_fast_schema_check_is_never_more_permissive_than_jsonschema(document) -> None:
    if validate.SchemaCheck().clean(document):
        assert list(validate._validator().iter_errors(document)) == []


def test_fast_schema_check_clears_ordinary_lead_files() -> None:
    for path in sorted(CASES.glob("*/leads/**/*.yaml")) + sorted(EXAMPLES.glob("**/*.yaml")):
        document = leadfiles.parse_lead_file(path.read_text(encoding="utf-8"), path.name).document
        assert validate.SchemaCheck().clean(document), path
