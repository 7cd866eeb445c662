"""The README's quickstart, run as a new user runs it: its fenced commands, word for word, from a
scratch copy of the checkout, against `reconcile emulator` (REST, then SOAP) and `apply --emulator`.

The blocks are the ones the README marks with `<!-- quickstart: NAME -->`; they are read from
README.md at test time, so an edit to the README is what this test runs. The one change made is the
emulator's port: 8080 in the README, a free port here (other runs may hold 8080).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_PORT = "8080"
pytestmark = pytest.mark.slow


def quickstart_blocks() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- quickstart: ([\w-]+) -->\n```sh\n(.*?)```", readme, re.DOTALL))


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A scratch copy of what the quickstart reads from the checkout (the example leads), a HOME of its
    own, and the installed `reconcile` first on PATH."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    shutil.copytree(ROOT / "leads", copy / "leads")
    (tmp_path / "home").mkdir()
    return copy


def shell_env(tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETO_", "RECONCILE_"))}
    return {**keep, "HOME": str(tmp_path / "home"), "NO_COLOR": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{keep.get('PATH', '')}"}


def run_block(block: str, cwd: Path, environ: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", block], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def running_emulator(checkout: Path):
    """The README's emulator block, started as its first terminal; yields the port it listens on."""
    block = quickstart_blocks()["emulator"]
    assert README_PORT in block
    port = free_port()
    process = subprocess.Popen(["bash", "-e", "-c", block.replace(README_PORT, port)], cwd=checkout,
                               env=shell_env(checkout.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    seen = []
    deadline = time.monotonic() + 60
    for line in process.stdout:
        seen.append(line)
        if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
            break
    assert "Press Ctrl-C to stop." in "".join(seen), "".join(seen)
    yield port
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


def test_the_readme_marks_its_quickstart_blocks() -> None:
    assert set(quickstart_blocks()) >= {"emulator", "rest", "soap"}


def test_rest_quickstart_applies_the_example_leads_to_a_standalone_emulator(checkout: Path,
                                                                             running_emulator: str) -> None:
    block = quickstart_blocks()["rest"].replace(README_PORT, running_emulator)
    result = run_block(block, checkout, shell_env(checkout.parent))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("Plan: 5 to create, 1 to adopt, 0 to update, 1 already absent, 0 orphaned, 0 unchanged; "
            "1 list addition, 0 removals; 3 Sync Leads calls.") in result.stdout
    assert "Apply complete: 5 created, 0 updated, 1 adopted, 0 failed" in result.stdout
    assert "Apply through REST would refuse" not in result.stdout
    project = checkout.parent / "home" / "reconcile-quickstart"
    assert (project / "reconcile.state.json").is_file()
    assert not (checkout / "reconcile.state.json").exists()


def test_soap_quickstart_applies_the_example_leads_to_a_standalone_emulator(checkout: Path,
                                                                             running_emulator: str) -> None:
    block = quickstart_blocks()["soap"].replace(README_PORT, running_emulator)
    result = run_block(block, checkout, shell_env(checkout.parent))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Apply complete: 5 created, 0 updated, 1 adopted, 0 failed" in result.stdout


@pytest.mark.parametrize("api", ["soap", "rest"])
def test_apply_emulator_applies_the_example_leads_on_both_apis(checkout: Path, api: str) -> None:
    environ = shell_env(checkout.parent)
    first = run_block(f"reconcile apply --emulator --api {api} --auto-approve", checkout, environ)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Apply complete: 5 created, 0 updated, 1 adopted, 0 failed" in first.stdout
    again = run_block(f"reconcile plan --api {api} --detailed-exitcode", checkout, environ)
    assert again.returncode == 0, again.stdout + again.stderr
