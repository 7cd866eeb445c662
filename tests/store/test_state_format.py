"""State format 2: migration from format 1, what one change costs in git and on disk, strict reading."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.core.model import State, StateLead
from reconcile.errors import ExitStatus, StateError
from reconcile.store import state as state_module
from reconcile.store import statefiles
from reconcile.store.state import (FORMAT_VERSION, load_state, open_state, shard_dir_for, state_hash, with_leads,
                                   write_state)
from reconcile.store.statecodec import serialize_v1

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parents[1] / "state_golden"
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_state import generated_state  # noqa: E402  (the state the state benchmark measures)
from conftest import v1_state


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "people.yaml": "leads:\n  - email: ada@example.com\n    attributes: {FirstName: Ada}\n",
    })


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- migration ---------------------------------------------------------------------------------------


def test_the_first_write_migrates_a_golden_v1_state_to_the_golden_v2_files(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    shutil.copy(GOLDEN / "v1.state.json", state_path)
    before = load_state(state_path)  # format 1 stays readable
    assert before.format_version == 1 and before.serial == 7 and len(before.leads) == 6
    assert before.leads["email:mixed.case@example.com"].email == "Mixed.Case@Example.com"

    current, writer = open_state(state_path)
    report = writer.write(with_leads(current, current.leads))
    assert report.migrated and report.wrote

    assert _tree(tmp_path) == _tree(GOLDEN / "v2"), "the migrated files differ from tests/state_golden/v2"
    after = load_state(state_path)
    assert after.format_version == FORMAT_VERSION
    assert after.leads == before.leads and after.lineage == before.lineage and after.serial == 8
    again = writer.write(with_leads(after, after.leads))
    assert not again.migrated


def test_the_cli_says_once_that_it_migrated(workspace):
    shutil.copy(GOLDEN / "v1.state.json", workspace / "reconcile.state.json")
    first = invoke("state", "rm", "id:1090243")
    assert first.exit_code == 0, first.stderr
    assert first.stderr.count("migrated reconcile.state.json to state format 2") == 1
    assert (workspace / "reconcile.state.d").is_dir()
    second = invoke("state", "rm", "email:never-answered@example.com")
    assert second.exit_code == 0 and "migrated" not in second.stderr
    listed = invoke("state", "list")
    assert listed.stdout.splitlines() == ["email:em1000@etestd.marketo.net\t1090240",
                                          "email:mixed.case@example.com\t1090241",
                                          "fsp:CUSTOM:a:b:c\t2147483647", "fsp:SFDC:1224191\t1090242"]
    assert json.loads(invoke("state", "show", "fsp:SFDC:1224191").stdout)["attributes"]["Zip"] == "01234"


# --- size and diffs ----------------------------------------------------------------------------------


def test_a_lead_with_seven_short_attributes_costs_at_most_250_bytes(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    write_state(state_path, generated_state(5000))
    total = sum(len(data) for data in _tree(tmp_path).values())
    assert total / 5000 <= 250
    assert max(len(data) for data in _tree(tmp_path).values()) < 100_000


def _git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _changed_lines(numstat: str) -> int:
    return sum(int(added) + int(removed) for added, removed, _ in
               (line.split("\t") for line in numstat.splitlines() if line.strip()))


def test_applying_one_changed_attribute_is_a_diff_of_at_most_six_lines(workspace):
    leads = workspace / "leads"
    shutil.rmtree(leads)
    leads.mkdir()
    body = "".join(f"  - email: lead{i}@example.com\n    attributes: {{Company: C{i}, Title: T{i}, City: X}}\n"
                   for i in range(120))
    (leads / "many.yaml").write_text("leads:\n" + body)
    first = invoke("apply", "--emulator", "--auto-approve", "--batch-size", "50")
    assert first.exit_code == 0, first.stderr
    _git(workspace, "init", "-q")
    _git(workspace, "add", "reconcile.state.json", "reconcile.state.d")
    _git(workspace, "commit", "-q", "-m", "state")

    (leads / "many.yaml").write_text("leads:\n" + body.replace("Title: T42,", "Title: Boss,"))
    second = invoke("apply", "--emulator", "--auto-approve")
    assert second.exit_code == 0, second.stderr
    assert "1 updated" in second.stdout
    _git(workspace, "add", "-A", "reconcile.state.json", "reconcile.state.d")
    numstat = _git(workspace, "diff", "--cached", "--numstat")
    assert _changed_lines(numstat) <= 6, _git(workspace, "diff", "--cached")
    diff = _git(workspace, "diff", "--cached", "-U0")
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert any('"Title":"Boss"' in line for line in changed)
    assert load_state(workspace / "reconcile.state.json").leads["email:lead42@example.com"].attributes["Title"] \
        == "Boss"


def _count_written(monkeypatch) -> list[int]:
    written: list[int] = []
    real = statefiles.write_atomic

    def counting(path, data, **kwargs):
        written.append(len(data))
        return real(path, data, **kwargs)

    monkeypatch.setattr(statefiles, "write_atomic", counting)
    return written


def _checkpoint_bytes(tmp_path: Path, count: int, monkeypatch) -> int:
    state_path = tmp_path / f"s{count}" / "reconcile.state.json"
    state = generated_state(count)
    write_state(state_path, state)
    current, writer = open_state(state_path)
    key = sorted(current.leads)[count // 2]
    old = current.leads[key]
    changed = dict(current.leads)
    changed[key] = StateLead(old.lead_id, old.email, old.foreign_sys_person_id, old.foreign_sys_type,
                             {**old.attributes, "Title": "Changed"}, "2026-11-29T00:00:00Z")
    written = _count_written(monkeypatch)
    report = writer.write(with_leads(current, changed), changed=[key])
    monkeypatch.undo()
    assert report.wrote and sum(written) == report.bytes_written
    assert load_state(state_path).leads == changed
    return sum(written)


def test_checkpoint_bytes_do_not_grow_with_the_state(tmp_path, monkeypatch):
    small = _checkpoint_bytes(tmp_path, 4_000, monkeypatch)
    large = _checkpoint_bytes(tmp_path, 40_000, monkeypatch)
    whole_large = sum(len(d) for d in _tree(tmp_path / "s40000").values())
    assert large < 2 * small, (small, large)
    assert large < whole_large / 50, (large, whole_large)


def test_a_checkpoint_touching_every_shard_encodes_only_the_leads_that_changed(tmp_path, monkeypatch):
    """A bulk apply spreads its new leads over every shard: the leads already written are copied as
    the bytes last written, not encoded again, so a checkpoint's CPU follows the change."""
    state_path = tmp_path / "reconcile.state.json"
    state = generated_state(6000)
    writer = open_state(state_path)[1]
    writer.write(state)
    keys = sorted(state.leads)
    changed = dict(state.leads)
    for key in keys[::60]:  # 100 leads, in every shard
        old = changed[key]
        changed[key] = StateLead(old.lead_id, old.email, old.foreign_sys_person_id, old.foreign_sys_type,
                                 {**old.attributes, "Title": "Changed"}, "2026-11-29T00:00:00Z")
    encoded: list[str] = []
    real = statefiles.lead_line
    monkeypatch.setattr(statefiles, "lead_line", lambda key, lead: encoded.append(key) or real(key, lead))
    report = writer.write(with_leads(state, changed), changed=keys[::60])
    shards = [name for name in report.files if name.endswith(".jsonl")]
    assert len(shards) == statefiles.shard_count_for(6000)
    assert sorted(encoded) == keys[::60]
    assert load_state(state_path).leads == changed


def test_writing_without_a_writer_also_touches_only_the_changed_shard(tmp_path, monkeypatch):
    state_path = tmp_path / "reconcile.state.json"
    write_state(state_path, generated_state(3000))
    current = load_state(state_path)
    key = sorted(current.leads)[5]
    leads = dict(current.leads)
    del leads[key]
    written = _count_written(monkeypatch)
    report = write_state(state_path, with_leads(current, leads))
    shard_files = [name for name in report.files if name.endswith(".jsonl")]
    whole = sum(len(d) for d in _tree(tmp_path).values())
    assert len(shard_files) == 1 and sum(written) < whole / 8, (sum(written), whole)
    assert key not in load_state(state_path).leads


# --- strict reading ----------------------------------------------------------------------------------


def _v1_text(**overrides) -> str:
    lead = {"leadId": 7, "email": "a@example.com", "foreignSysPersonId": None, "foreignSysType": None,
            "attributes": {}, "syncedAt": None}
    lead.update(overrides.pop("lead", {}))
    data = v1_state({"email:a@example.com": lead}, serial=1, lineage="x")
    data.update(overrides)
    return json.dumps(data)


@pytest.mark.parametrize("text,message", [
    ('{"format_version": 1, "lineage": "x", "serial": 1, "leads": {}, "leads": {"email:a@example.com": {}}}',
     "duplicate key 'leads'"),
    (_v1_text().replace('"serial": 1', '"serial": ' + "9" * 5000), "a number of 5000 digits"),
    (_v1_text().replace('"leadId": 7', '"leadId": ' + "9" * 5000), "a number of 5000 digits"),
    (_v1_text(lead={"leadId": 2**31}), "leadId 2147483648 is out of range: Marketo lead IDs are xs:int"),
    (_v1_text(serial=2**64), "serial must be a non-negative 64-bit integer"),
])
def test_a_bad_state_is_exit_3_in_one_line(workspace, text, message):
    (workspace / "reconcile.state.json").write_text(text)
    for command in (["plan"], ["state", "list"]):
        result = invoke(*command)
        assert result.exit_code == ExitStatus.INVALID_INPUT, result.stderr
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
        assert result.stderr.startswith("error: reconcile.state.json: ")


def test_a_duplicate_key_in_a_shard_line_is_named_with_its_file_and_line(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    write_state(state_path, generated_state(40))
    shard = sorted(shard_dir_for(state_path).glob("*.jsonl"))[0]
    lines = shard.read_text().splitlines()
    lines[-1] = lines[-1][:-1] + ',"leadId":5,"leadId":6}'
    shard.write_text("\n".join(lines) + "\n")
    with pytest.raises(StateError, match="duplicate key 'leadId'") as info:
        load_state(state_path)
    assert info.value.location.file == str(shard) and info.value.location.line == len(lines)


def test_a_missing_shard_is_an_error_not_a_smaller_state(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    write_state(state_path, generated_state(40))
    sorted(shard_dir_for(state_path).glob("*.jsonl"))[0].unlink()
    with pytest.raises(StateError, match="state lists 40 lead"):
        load_state(state_path)


def test_state_under_a_file_and_plan_out_to_a_directory_are_usage_errors(workspace):
    (workspace / "FILE").write_text("not a directory")
    result = invoke("apply", "--emulator", "--auto-approve", "--state", "FILE/state.json")
    assert result.exit_code == ExitStatus.USAGE and len(result.stderr.splitlines()) == 1, result.stderr
    assert "FILE is a file, not a directory" in result.stderr
    (workspace / "plans").mkdir()
    result = invoke("plan", "--out", "plans")
    assert result.exit_code == ExitStatus.USAGE and len(result.stderr.splitlines()) == 1, result.stderr
    assert "--out plans is a directory" in result.stderr
    result = invoke("plan", "--state", "FILE/state.json")
    assert result.exit_code in (ExitStatus.USAGE, ExitStatus.INVALID_INPUT), result.stderr
    assert len(result.stderr.splitlines()) == 1


# --- the whole state's hash -----------------------------------------------------------------------


def test_the_state_hash_covers_every_shard(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    write_state(state_path, generated_state(100))
    before = state_hash(state_path)
    shard = sorted(shard_dir_for(state_path).glob("*.jsonl"))[3]
    shard.write_text(shard.read_text().replace('"Company', '"Kompany', 1))
    assert state_hash(state_path) != before


def test_a_format_1_state_keeps_its_hash_so_saved_plans_stay_valid(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    data = serialize_v1(State(lineage="l", serial=1, leads={}))
    state_path.write_bytes(data)
    import hashlib
    assert state_hash(state_path) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_an_apply_reads_no_shard_to_write_and_writes_only_the_changed_one(tmp_path, monkeypatch, emulator,
                                                                         transport_for, lead_factory):
    from reconcile.apply import apply_plan, recover_state
    from reconcile.core.planner import plan as make_plan

    state_path = tmp_path / "reconcile.state.json"
    desired = lead_factory(1200)
    state, _ = recover_state(state_path)
    apply_plan(make_plan(desired, state), state, state_path, transport_for(emulator))
    whole = sum(len(d) for d in _tree(tmp_path).values())

    changed = lead_factory(1200)
    changed[600] = type(changed[600])(location=changed[600].location, email=changed[600].email,
                                      attributes={**changed[600].attributes, "Title": "Changed"})
    state, _ = recover_state(state_path)
    shard_reads, writing = [], []
    real_read, real_load = statefiles._read_shard, state_module.open_state
    monkeypatch.setattr(statefiles, "_read_shard", lambda path, leads: (writing and shard_reads.append(path),
                                                                        real_read(path, leads)))
    monkeypatch.setattr(state_module, "open_state", lambda path: (writing and shard_reads.append(path),
                                                                  real_load(path))[1])
    from reconcile.apply import ledger
    real_persist = ledger.persist_state

    def persist(*args, **kwargs):  # the engine's one way to write the state
        writing.append(True)
        return real_persist(*args, **kwargs)

    monkeypatch.setattr(ledger, "persist_state", persist)
    written = _count_written(monkeypatch)
    report = apply_plan(make_plan(changed, state), state, state_path, transport_for(emulator))
    assert len(report.updated) == 1
    assert writing and shard_reads == [], "the apply's state write read the state back"
    assert 0 < sum(written) < whole / 8, (sum(written), whole)
    monkeypatch.undo()
    assert load_state(state_path).leads["email:u0600@example.com"].attributes["Title"] == "Changed"
