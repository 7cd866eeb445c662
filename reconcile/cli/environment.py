"""What the CLI reads from and writes to the outside world (streams, environment variables, ttys)."""

from __future__ import annotations

import contextvars
import json
import os
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, TextIO

from reconcile.core.safetext import not_a_command, safe_block, visible
from reconcile.errors import ReconcileError

@dataclass
class Environment:
    """Everything the CLI reads from or writes to the outside world, injectable for tests."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdout_isatty: bool | None = None
    stdin_isatty: bool | None = None
    stderr_isatty: bool | None = None
    debug: bool = False
    json_errors: bool = False  # errors and warnings as one JSON object per line (--error-format json)

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)

    @property
    def color(self) -> bool:
        return bool(self.stdout_isatty) and "NO_COLOR" not in self.environ and self.environ.get("TERM") != "dumb"

    def out(self, text: str = "") -> None:
        """Text assembled by reconcile (values in it already escaped): no line of it can be a command."""
        text = safe_block(text, keep_ansi=self.color)
        self.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        self.stdout.flush()

    def err(self, text: str) -> None:
        """One line on stderr, whatever the text holds."""
        self.stderr.write(not_a_command(visible(text)) + "\n")
        self.stderr.flush()

    def debug_log(self, text: str) -> None:
        """A multi-line debug record (an HTTP exchange): each line prefixed, each shown safely."""
        for line in text.split("\n"):
            self.err(f"debug: {line}")

    def err_block(self, text: str) -> None:
        self.stderr.write(safe_block(text) + "\n")
        self.stderr.flush()

    def warn(self, text: str) -> None:
        if self.json_errors:
            self.err(json.dumps({"severity": "warning", "file": None, "line": None, "path": None,
                                 "message": text, "exit_code": None}))
        else:
            self.err(f"warning: {text}")

    def error(self, exc: ReconcileError) -> None:
        if self.json_errors:
            for diagnostic in exc.diagnostics():
                self.err(json.dumps(diagnostic))
        else:
            for line in exc.lines():
                self.err(f"error: {line}")

    def workflow_command(self, line: str) -> None:
        """A GitHub Actions workflow command that reconcile means (its data escaped by the caller)."""
        self.stdout.write(line + "\n")
        self.stdout.flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_current_env: contextvars.ContextVar[Environment] = contextvars.ContextVar("reconcile_env")


def env() -> Environment:
    return _current_env.get()


class TextOrJson(str, Enum):
    text = "text"
    json = "json"


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"
