"""A corpus of bad inputs, each with its expected exit status and one-line error (file:line included).

No input may produce a traceback or touch the state file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clirunner import invoke
from conftest import v1_state

CORPUS = Path(__file__).parents[1] / "bad_inputs"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
GOOD_STATE = json.dumps(v1_state({}, serial=4), indent=2, sort_keys=True) + "\n"
GOOD_LEADS = "leads:\n  - email: fine@example.com\n"


def _workspace(tmp_path: Path, name: str) -> tuple[Path, Path]:
    leads = tmp_path / "leads"
    leads.mkdir()
    state = tmp_path / "reconcile.state.json"
    if name.endswith(".state.json"):
        (leads / "good.yaml").write_text(GOOD_LEADS)
        shutil.copyfile(CORPUS / name, state)
    else:
        shutil.copyfile(CORPUS / name, leads / name)
        state.write_text(GOOD_STATE)
    return leads, state


def test_corpus_is_complete() -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.name != "expected.json")
    assert files == sorted(EXPECTED), "every corpus file needs an expectation, and every expectation a file"
    assert len(files) >= 25


# validate reads only lead files, so the state-file cases run under plan alone.
CASES = [(name, command) for name in sorted(EXPECTED) for command in ("validate", "plan")
         if not (command == "validate" and name.endswith(".state.json"))]


@pytest.mark.parametrize("name,command", CASES)
def test_bad_input(name: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = EXPECTED[name]
    monkeypatch.chdir(tmp_path)
    leads, state = _workspace(tmp_path, name)
    before = state.read_bytes()

    result = invoke(command, "--leads", "leads", "--state", "reconcile.state.json") if command == "plan" \
        else invoke(command, "--leads", "leads")

    assert "Traceback" not in result.stderr
    assert result.exit_code == expected["exit"], result.stderr
    assert result.stderr.splitlines() == [f"error: {expected['error']}"]
    assert result.stdout == ""
    assert state.read_bytes() == before
    assert not list(tmp_path.glob(".reconcile.state.json.*")), "no temporary state files left behind"
