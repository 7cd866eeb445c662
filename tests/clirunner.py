"""Run the whole CLI in-process with an injected environment: no subprocess, captured output."""

from __future__ import annotations

import io
from dataclasses import dataclass

from reconcile.cli import Environment, run


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def invoke(*args: str, environ: dict | None = None, stdin: str = "", tty: bool = False) -> Result:
    out, err = io.StringIO(), io.StringIO()
    environment = Environment(stdout=out, stderr=err, stdin=io.StringIO(stdin), environ=environ or {},
                              stdout_isatty=tty, stdin_isatty=tty)
    code = run(list(args), environment)
    return Result(int(code), out.getvalue(), err.getvalue())
