"""`reconcile emulator` started as a user starts it: a child process on a free port, read until it says
it serves (its export lines are what a user copies)."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def start_emulator(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str]]:
    """The running emulator process and the lines it printed up to "Press Ctrl-C"."""
    process = subprocess.Popen([sys.executable, "-m", "reconcile", "emulator", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            return process, lines
    process.kill()
    raise AssertionError(f"emulator did not start: {lines} {process.stderr.read()}")
