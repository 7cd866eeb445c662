"""Workflow commands from reconcile's machine-readable errors (`--error-format json`).

Each diagnostic is one JSON object on its own line, with file, line, path, message and exit_code;
every other line of the output passes through untouched (it was made safe when it was printed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterable

from reconcile.core.safetext import visible

LEVELS = ("error", "warning")


def escape_data(text: str) -> str:
    """GitHub's escaping of a workflow command's message; other invisible characters shown as escapes."""
    escaped = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return visible(escaped)


def escape_property(text: str) -> str:
    """GitHub's escaping of a workflow command's property value (file=, line=, title=)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    level: str  # "error" | "warning"
    message: str
    file: str | None = None
    line: int | None = None

    def command(self) -> str:
        props = []
        if self.file is not None:
            props.append(f"file={escape_property(self.file)}")
        if self.line is not None:
            props.append(f"line={self.line}")
        head = f"::{self.level}" + (" " + ",".join(props) if props else "")
        return f"{head}::{escape_data(self.message)}"


def parse_diagnostic(line: str) -> dict[str, Any] | None:
    """The diagnostic on `line`, or None when the line is ordinary output."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("severity") not in LEVELS or not isinstance(data.get("message"), str):
        return None
    return data


def diagnostics_in(text: str) -> list[dict[str, Any]]:
    return [d for d in map(parse_diagnostic, text.splitlines()) if d is not None]


def _text_field(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def _line_field(data: dict[str, Any]) -> int | None:
    value = data.get("line")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def message_of(data: dict[str, Any]) -> str:
    path = _text_field(data, "path")
    return f"{path}: {data['message']}" if path else data["message"]


def describe(data: dict[str, Any]) -> str:
    """One line for people: `FILE:LINE: PATH: MESSAGE`, every part shown safely."""
    where = _text_field(data, "file")
    line = _line_field(data)
    if where is not None and line is not None:
        where = f"{where}:{line}"
    return visible(f"{where}: {message_of(data)}" if where else message_of(data))


def repo_relative(file: str, workspace: str | None, cwd: str | None) -> str:
    """A path as GitHub wants it in an annotation: relative to the repository root, with slashes."""
    if not workspace:
        return file.replace(os.sep, "/")
    absolute = os.path.normpath(file if os.path.isabs(file) else os.path.join(cwd or os.getcwd(), file))
    root = os.path.normpath(os.path.abspath(workspace))
    relative = os.path.relpath(absolute, root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return file.replace(os.sep, "/")
    return relative.replace(os.sep, "/")


def to_annotation(data: dict[str, Any], workspace: str | None = None, cwd: str | None = None) -> Annotation:
    file = _text_field(data, "file")
    return Annotation(data["severity"], message_of(data),
                      repo_relative(file, workspace, cwd) if file is not None else None,
                      _line_field(data) if file is not None else None)


def annotate(lines: Iterable[str], workspace: str | None = None,
             cwd: str | None = None) -> Iterable[Annotation | str]:
    """Each line of reconcile's output: an Annotation for a diagnostic, else the line itself."""
    for raw in lines:
        line = raw.rstrip("\r\n")
        data = parse_diagnostic(line)
        yield to_annotation(data, workspace, cwd) if data is not None else line
