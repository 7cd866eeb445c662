"""Atomic file writes, and the state's Marketo instance."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from clirunner import invoke
from reconcile.errors import ExitStatus
from reconcile.store import fs
from reconcile.store.instance import EMULATOR, instance_of
from reconcile.store.state import load_state


class _Crash(BaseException):
    pass


# --- write_atomic ------------------------------------------------------------------------------------


def test_the_new_content_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        size = os.fstat(fd).st_size
        events.append(("fsync", os.path.basename(name), size))
        return real_fsync(fd)

    def replace(source, destination):
        events.append(("rename", os.path.basename(source), os.path.basename(destination)))
        return real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fs.write_atomic(target, b"new content")
    renames = [i for i, event in enumerate(events) if event[0] == "rename"]
    assert len(renames) == 1
    temp = events[renames[0]][1]
    assert ("fsync", temp, len(b"new content")) in events[:renames[0]], events
    assert events[renames[0]][2] == "state.json"
    assert any(event[0] == "fsync" for event in events[renames[0] + 1:]), "the directory is fsynced after"
    assert target.read_bytes() == b"new content"


def test_a_crash_between_write_and_rename_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old state\n")

    def crash(source, destination):
        raise _Crash()

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(_Crash):
        fs.write_atomic(target, b"new state that never lands\n")
    monkeypatch.undo()
    assert target.read_bytes() == b"old state\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_mode_of_an_existing_file_survives_a_strict_umask(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    fresh = tmp_path / "fresh.json"
    previous = os.umask(0o077)
    try:
        fs.write_atomic(target, b"new")
        fs.write_atomic(fresh, b"new")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600  # a new file follows the umask


# --- the instance ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint,instance", [
    ("https://123-ABC-456.mktoapi.com/soap/mktows/2_9", "123-ABC-456"),
    ("https://123-abc-456.mktorest.com/rest", "123-ABC-456"),
    ("https://123-abc-456.mktorest.com", "123-ABC-456"),
    ("http://127.0.0.1:8080/soap/mktows/2_1", EMULATOR),
    ("http://127.0.0.1:45123/soap/mktows/2_1", EMULATOR),
    ("http://[::1]:9/x", EMULATOR),
    ("http://localhost:1234/rest", EMULATOR),
    ("https://marketo.internal.example.com/soap", "marketo.internal.example.com"),
])
def test_instance_of_an_endpoint(endpoint, instance):
    assert instance_of(endpoint) == instance


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "people.yaml": "leads:\n  - email: ada@example.com\n    attributes: {FirstName: Ada}\n",
    })


def _top(workspace: Path) -> dict:
    return json.loads((workspace / "reconcile.state.json").read_text())


LIVE = {"MARKETO_USER_ID": "user", "MARKETO_ENCRYPTION_KEY": "k" * 40,
        "MARKETO_SOAP_ENDPOINT": "https://123-ABC-456.mktoapi.com/soap/mktows/2_9"}


def test_the_state_remembers_its_instance_until_rebound(workspace):
    first = invoke("apply", "--emulator", "--auto-approve")
    assert first.exit_code == 0, first.stderr
    assert _top(workspace)["instance"] == EMULATOR
    assert load_state(workspace / "reconcile.state.json").instance == EMULATOR

    (workspace / "leads" / "people.yaml").write_text(
        "leads:\n  - email: ada@example.com\n    attributes: {FirstName: Ada Lovelace}\n")
    elsewhere = invoke("apply", "--auto-approve", environ=LIVE)
    assert elsewhere.exit_code == ExitStatus.INVALID_INPUT, elsewhere.stderr
    assert len(elsewhere.stderr.splitlines()) == 1
    assert "'emulator'" in elsewhere.stderr and "'123-ABC-456'" in elsewhere.stderr
    assert "reconcile state rebind" in elsewhere.stderr

    serial = _top(workspace)["serial"]
    rebound = invoke("state", "rebind", environ=LIVE)
    assert rebound.exit_code == 0, rebound.stderr
    assert "123-ABC-456" in rebound.stdout and "(was emulator)" in rebound.stdout
    assert _top(workspace)["instance"] == "123-ABC-456" and _top(workspace)["serial"] == serial + 1

    back = invoke("apply", "--emulator", "--auto-approve")
    assert back.exit_code == ExitStatus.INVALID_INPUT and "'123-ABC-456'" in back.stderr
    assert invoke("state", "rebind", "--emulator").exit_code == 0
    again = invoke("apply", "--emulator", "--auto-approve")
    assert again.exit_code == 0, again.stderr
    assert "1 updated" in again.stdout


def test_rebind_needs_to_know_the_new_instance(workspace):
    result = invoke("state", "rebind")
    assert result.exit_code == ExitStatus.USAGE and "--endpoint" in result.stderr
