"""`reconcile emulator` as a user runs it: a real process, its export lines, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from clirunner import invoke


def _start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str]]:
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


def test_emulator_prints_exports_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    process, lines = _start("--db", str(db), "--field", "Shoe_Size__c")
    try:
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        assert set(exports) == {"MARKETO_SOAP_ENDPOINT", "MARKETO_USER_ID", "MARKETO_ENCRYPTION_KEY",
                                "MARKETO_REST_ENDPOINT", "MARKETO_CLIENT_ID", "MARKETO_CLIENT_SECRET"}
        endpoint = exports["MARKETO_SOAP_ENDPOINT"]
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith("/soap/mktows/2_1")
        wsdl = urllib.request.urlopen(endpoint + "?WSDL", timeout=10).read().decode()
        assert f'location="{endpoint}"' in wsdl

        (tmp_path / "leads").mkdir()
        (tmp_path / "leads" / "a.yaml").write_text(
            "leads:\n  - email: shoe@example.com\n    attributes: {Shoe_Size__c: '44'}\n")
        env = {"MARKETO_SOAP_ENDPOINT": endpoint, "MARKETO_USER_ID": exports["MARKETO_USER_ID"],
               "MARKETO_ENCRYPTION_KEY": exports["MARKETO_ENCRYPTION_KEY"].strip("'")}
        result = invoke("apply", "--auto-approve", "--leads", str(tmp_path / "leads"),
                        "--state", str(tmp_path / "state.json"), environ=env)
        assert result.exit_code == 0, result.stderr
        assert "Shoe_Size__c" in db.read_text(), "an extra --field is accepted and persisted"
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Marketo emulator stopped." in out
    assert "Traceback" not in err


def test_a_chosen_key_is_never_printed() -> None:
    process, lines = _start(env={"MARKETO_ENCRYPTION_KEY": "chosen-secret-0451"})
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "chosen-secret-0451" not in "\n".join(lines) + out
