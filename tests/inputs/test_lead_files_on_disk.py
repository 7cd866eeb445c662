"""Lead files as they lie on disk are hostile too: a symlink out of the lead directory, a FIFO, a
device or a huge file is refused with exit 3 and one line that shows nothing read from it; and the
input modules import one way (cache never imports validate)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from clirunner import Result, invoke

SECRET = "hunter2 is the database password"
GOOD = "leads:\n  - email: jane@example.com\n"


@pytest.fixture
def workspace(make_workspace) -> Path:
    return make_workspace({
        "good.yaml": GOOD,
    })


def invoke_with_deadline(*args: str, seconds: float = 30.0) -> Result:
    """invoke(), failing the test (instead of hanging the run) when the CLI blocks."""
    results: list[Result] = []
    worker = threading.Thread(target=lambda: results.append(invoke(*args)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert results, f"reconcile {' '.join(args)} was still running after {seconds} s"
    return results[0]


def assert_refused(result: Result, message: str, preamble: int = 0) -> None:
    """Exit 3 and one error line (after `preamble` lines of progress), naming the file and why."""
    assert result.exit_code == 3, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == preamble + 1 and lines[-1].startswith("error: "), result.stderr
    assert message in lines[-1], result.stderr
    assert SECRET not in result.stderr and "hunter2" not in result.stderr


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_a_symlink_out_of_the_lead_directory_is_refused_without_showing_its_target(
        command: str, workspace: Path) -> None:
    (workspace / "outside").mkdir()
    (workspace / "outside" / "secret.txt").write_text(SECRET + "\n")
    (workspace / "leads" / "a.yaml").symlink_to("../outside/secret.txt")
    result = invoke(command)
    assert_refused(result, "leads/a.yaml: is a symlink to a file outside leads; lead files must live in the "
                           "lead directory")


def test_a_symlink_to_dev_zero_is_refused_at_once(workspace: Path) -> None:
    (workspace / "leads" / "zero.yaml").symlink_to("/dev/zero")
    started = time.monotonic()
    result = invoke_with_deadline("validate")
    assert_refused(result, "leads/zero.yaml: is a symlink to a file outside leads")
    assert time.monotonic() - started < 10


def test_a_symlink_within_the_lead_directory_is_read(workspace: Path) -> None:
    (workspace / "leads" / "shared").mkdir()
    (workspace / "leads" / "shared" / "team.txt").write_text("leads:\n  - email: team@example.com\n")
    (workspace / "leads" / "team.yaml").symlink_to("shared/team.txt")
    result = invoke("validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "2 leads in 2 files are valid.\n"


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(workspace: Path) -> None:
    pipe = workspace / "leads" / "pipe.yaml"
    os.mkfifo(pipe)
    try:
        result = invoke_with_deadline("validate")
    finally:  # a reader still blocked in open() (the bug this guards against) is let go
        fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(pipe) else None
        if fd is not None:
            os.close(fd)
    assert_refused(result, "leads/pipe.yaml: is a named pipe (FIFO), not a regular file; refusing to read it")


def _has_reader(pipe: Path) -> bool:
    try:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        return True
    except OSError:
        return False


def test_a_device_given_as_the_lead_file_is_refused(workspace: Path) -> None:
    result = invoke_with_deadline("validate", "--leads", "/dev/zero")
    assert_refused(result, "/dev/zero: is a character device, not a regular file; refusing to read it")


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_a_lead_file_over_the_size_cap_is_refused(command: str, workspace: Path) -> None:
    big = workspace / "leads" / "big.yaml"
    big.write_text("leads:\n" + "".join(f"  - email: lead{i}@example.com\n" for i in range(100)))
    assert big.stat().st_size > 2048
    args = (command, "--emulator", "--auto-approve") if command == "apply" else (command,)
    result = invoke(*args, "--max-file-size", "2k")
    assert_refused(result, "leads/big.yaml: file is larger than the 2 kB limit for a lead file (2.9 kB); "
                           "split it, or raise --max-file-size", preamble=2 if command == "apply" else 0)
    assert not (workspace / "reconcile.state.json").exists()
    assert invoke(command if command != "apply" else "validate", "--max-file-size", "4k").exit_code in (0, 2)


def test_the_default_cap_is_checked_before_reading(workspace: Path) -> None:
    """A sparse 300 MB file: refused from its size alone, in far less time (and memory) than reading it."""
    huge = workspace / "leads" / "huge.yaml"
    with open(huge, "wb") as handle:
        handle.truncate(300 * 1024 * 1024)
    started = time.monotonic()
    result = invoke("validate")
    assert_refused(result, "leads/huge.yaml: file is larger than the 256 MB limit for a lead file (300 MB)")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["0", "lots", "-1", "1T", ""])
def test_a_bad_size_is_a_usage_error(value: str, workspace: Path) -> None:
    result = invoke("validate", "--max-file-size", value)
    assert result.exit_code == 64, result.stderr
    assert "--max-file-size: expected a size such as 256M, 1G or 65536" in result.stderr


def test_validate_counts_in_words_that_agree(workspace: Path) -> None:
    assert invoke("validate").stdout == "1 lead in 1 file is valid.\n"
    (workspace / "leads" / "more.yaml").write_text("leads:\n  - email: a@example.com\n  - email: b@example.com\n")
    assert invoke("validate").stdout == "3 leads in 2 files are valid.\n"


