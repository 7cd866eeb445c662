"""A cache can only save work, never change a result: whatever a run prints with the caches is what
a run without any cache prints (stdout, stderr and exit status, byte for byte; a saved plan's bytes),
for every output format, after random edits, and after a change to each input of the cache key (the
lead files, the state, the schema, the options, the API context, the package, the runtime).

Small data: MIN_INPUT_BYTES is lowered to 0, so every layer takes part.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clirunner import invoke
from reconcile.core import render
from reconcile.inputs import cache, validate
from reconcile.inputs.fields import save_catalog
from rest_fake import describe_entries
from test_plan_fast_paths import lead_file, state_file  # the same small workspace

REST_ENV = {"MARKETO_REST_ENDPOINT": "https://123-ABC-456.mktorest.com/rest", "MARKETO_CLIENT_ID": "id",
            "MARKETO_CLIENT_SECRET": "never-used-secret"}
RUNS = (("plan",), ("plan", "--format", "json"), ("plan", "--format", "markdown"), ("plan", "--compact"),
        ("plan", "--detailed-exitcode"), ("plan", "--api", "rest"), ("validate",))


def make_workspace(root: Path) -> Path:
    (root / "leads").mkdir(parents=True)
    (root / "leads" / "a.yaml").write_text(lead_file(0, 3))
    (root / "leads" / "b.yaml").write_text(lead_file(3, 3))
    state_file(root / "reconcile.state.json")
    return root


def outputs(work: Path) -> list:
    """Every run's (exit status, stdout, stderr), and the bytes of a plan saved with --out."""
    results = []
    for args in RUNS:
        result = invoke(*args, environ=REST_ENV if "rest" in args else {})
        results.append((args, result.exit_code, result.stdout, result.stderr))
    saved = work / "saved.plan.json"
    saved.unlink(missing_ok=True)
    result = invoke("plan", "--out", str(saved))
    results.append(("--out", result.exit_code, result.stdout, result.stderr,
                    saved.read_bytes() if saved.exists() else None))
    saved.unlink(missing_ok=True)
    return results


class NoCache:
    """Runs with every cache off: what the caches must reproduce."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.monkeypatch = monkeypatch

    def outputs(self, work: Path) -> list:
        with self.monkeypatch.context() as patch:
            patch.setattr(cache.Cache, "get", lambda self, content: None)
            patch.setattr(cache.Cache, "put", lambda self, content, value: None)
            return outputs(work)


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    work = make_workspace(tmp_path / "work")
    monkeypatch.chdir(work)
    return work, NoCache(monkeypatch)


def assert_cached_equals_uncached(work: Path, no_cache: NoCache) -> list:
    cached = outputs(work)
    assert cached == no_cache.outputs(work)
    return cached


def test_warm_runs_print_what_cache_free_runs_print_in_every_format(setup) -> None:
    work, no_cache = setup
    cold = assert_cached_equals_uncached(work, no_cache)
    warm = assert_cached_equals_uncached(work, no_cache)
    assert cold == warm
    assert list(cache.workspace_dir(work / "reconcile.state.json", {}).rglob("*.entry")), "the caches were used"


# -- each input of the key: change it between a warm run and the next --------------------------------


def edit_lead_file(work: Path, monkeypatch) -> None:
    (work / "leads" / "b.yaml").write_text(lead_file(3, 3, title="CFO"))


def edit_state(work: Path, monkeypatch) -> None:
    state_file(work / "reconcile.state.json", title="COO")


def edit_schema(work: Path, monkeypatch) -> None:
    schema = json.loads(validate.schema_bytes())
    schema["$defs"]["lead"]["properties"]["email"]["maxLength"] = 16  # lead10@example.com is too long
    changed = json.dumps(schema).encode()
    monkeypatch.setattr(validate, "schema_bytes", lambda: changed)
    monkeypatch.setattr(validate, "_fast_rules", lambda: None)
    from jsonschema import Draft202012Validator

    monkeypatch.setattr(validate, "_validator", lambda: Draft202012Validator(schema))
    (work / "leads" / "c.yaml").write_text(lead_file(10, 1))


def edit_describe(work: Path, monkeypatch) -> None:
    entries = describe_entries()
    for entry in entries:
        if entry["soap"]["name"] == "Title":
            entry["soap"]["readOnly"] = entry["rest"]["readOnly"] = True
    save_catalog(cache.workspace_dir(work / "reconcile.state.json", {}), "123-abc-456.mktorest.com", entries)


def edit_package(work: Path, monkeypatch) -> None:
    """A new version of reconcile that words its summary differently."""
    real = render.summary_line
    monkeypatch.setattr(render, "summary_line", lambda *args, **kwargs: real(*args, **kwargs) + " (v2)")
    monkeypatch.setattr(cache, "package_fingerprint", lambda: b"the files of another version")


def edit_runtime(work: Path, monkeypatch) -> None:
    """Another Python or library that reads the same bytes differently (here: its summary)."""
    real = render.summary_line
    monkeypatch.setattr(render, "summary_line", lambda *args, **kwargs: real(*args, **kwargs) + " (py+1)")
    monkeypatch.setattr(cache, "runtime_versions", lambda: "another Python, other libraries")


@pytest.mark.parametrize("edit", [edit_lead_file, edit_state, edit_schema, edit_describe, edit_package,
                                  edit_runtime], ids=lambda edit: edit.__name__)
def test_a_change_to_any_input_of_the_key_is_seen(edit, setup, monkeypatch) -> None:
    work, no_cache = setup
    before = assert_cached_equals_uncached(work, no_cache)
    edit(work, monkeypatch)
    after = assert_cached_equals_uncached(work, no_cache)
    assert after != before, "the edit changes what a run prints"


def test_options_are_part_of_the_key(setup) -> None:
    """Each run of RUNS differs from the others in an option only: each must print its own output,
    whatever ran before it with a warm cache."""
    work, no_cache = setup
    for args in reversed(RUNS):
        invoke(*args, environ=REST_ENV if "rest" in args else {})
    assert_cached_equals_uncached(work, no_cache)


# -- random edits -----------------------------------------------------------------------------------

_EDITS = st.lists(st.tuples(st.sampled_from(["retitle", "add", "drop", "rename", "state", "break"]),
                            st.sampled_from(["a.yaml", "b.yaml"]),
                            st.sampled_from(["CTO", "CEO", "CFO", "Zoë ✓", "say \"hi\""])),
                  min_size=1, max_size=4)


def apply_edit(work: Path, kind: str, name: str, value: str) -> None:
    path = work / "leads" / name
    if not path.exists():
        path.write_text(lead_file(20, 2))
    text = path.read_text()
    if kind == "retitle":
        path.write_text(text.replace("Title: ", f"Title: {json.dumps(value)}\n      Was: ", 1))
    elif kind == "add":
        path.write_text(text + lead_file(30 + len(text) % 50, 1, title=json.dumps(value))[len("leads:\n"):])
    elif kind == "drop":
        path.write_text("leads:\n" + "\n".join(text.split("\n")[5:]))
    elif kind == "rename":
        path.rename(path.with_name("renamed-" + name))
    elif kind == "state":
        state_file(work / "reconcile.state.json", title=value)
    else:
        path.write_text(text + "  - email: not-an-email\n")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=_EDITS)
def test_random_edits_print_what_cache_free_runs_print(edits, monkeypatch) -> None:
    monkeypatch.setattr(cache, "MIN_INPUT_BYTES", 0)
    no_cache = NoCache(monkeypatch)
    with tempfile.TemporaryDirectory() as scratch:
        work = make_workspace(Path(scratch) / "work")
        monkeypatch.setenv("XDG_CACHE_HOME", str(Path(scratch) / "user-cache"))
        monkeypatch.chdir(work)
        outputs(work)  # warm
        for kind, name, value in edits:
            apply_edit(work, kind, name, value)
            assert_cached_equals_uncached(work, no_cache)
        monkeypatch.chdir(Path(scratch).parent)
        shutil.rmtree(work)
