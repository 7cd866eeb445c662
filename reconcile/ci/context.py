"""What GitHub Actions tells a step through its environment, and the files a step hands back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping


def run_url(environ: Mapping[str, str]) -> str | None:
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    repo, run_id = environ.get("GITHUB_REPOSITORY"), environ.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        return None
    return f"{server}/{repo}/actions/runs/{run_id}"


def event(environ: Mapping[str, str]) -> dict[str, Any]:
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def head_sha(environ: Mapping[str, str]) -> str | None:
    pull = event(environ).get("pull_request") or {}
    return (pull.get("head") or {}).get("sha") or environ.get("GITHUB_SHA")


def pull_request_number(environ: Mapping[str, str]) -> int | None:
    data = event(environ)
    number = (data.get("pull_request") or {}).get("number") or (data.get("issue") or {}).get("number")
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def output_text(values: Mapping[str, str]) -> str:
    """`values` in GITHUB_OUTPUT's syntax; a value with a newline gets a random heredoc delimiter."""
    out = []
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{os.urandom(8).hex()}"
            out.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            out.append(f"{name}={value}\n")
    return "".join(out)


def append_to(path: str | None, text: str) -> None:
    """Append to one of the files a step hands back (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY); no path, no-op."""
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text if text.endswith("\n") else text + "\n")
