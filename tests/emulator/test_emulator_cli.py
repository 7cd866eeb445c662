"""`reconcile emulator` as a user runs it: a real process, its export lines, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from clirunner import invoke
from emulator_process import start_emulator

from reconcile.emulator import DEFAULT_CLIENT_SECRET, EmulatorConfig


def test_emulator_prints_exports_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "db.json"
    process, lines = start_emulator("--db", str(db), "--field", "Shoe_Size__c")
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
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Shoe_Size__c" in db.read_text(), "an extra --field is accepted and persisted"
    assert "Marketo emulator stopped." in out
    assert "Traceback" not in err


def test_a_chosen_key_is_never_printed() -> None:
    process, lines = start_emulator(env={"MARKETO_ENCRYPTION_KEY": "chosen-secret-0451"})
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "chosen-secret-0451" not in "\n".join(lines) + out


def test_a_chosen_client_secret_is_never_printed_but_the_demo_one_is() -> None:
    process, lines = start_emulator(env={"MARKETO_CLIENT_SECRET": "chosen-client-secret-0452"})
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert "chosen-client-secret-0452" not in "\n".join(lines) + out + err
    assert 'export MARKETO_CLIENT_SECRET="$MARKETO_CLIENT_SECRET"' in "\n".join(lines)
    process, lines = start_emulator()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert f"export MARKETO_CLIENT_SECRET={DEFAULT_CLIENT_SECRET}" in lines


def test_config_repr_holds_neither_the_key_nor_the_client_secret() -> None:
    config = EmulatorConfig(encryption_key="key-0453-secret", client_secret="client-0454-secret")
    assert "key-0453-secret" not in repr(config) and "client-0454-secret" not in repr(config)
    assert "key-0453-secret" not in str(config) and "reconcile-emulator-client" in repr(config)


def _run_emulator(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconcile", "emulator", *args], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


def test_a_port_in_use_is_one_usage_line_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_emulator("--port", str(port))
    assert result.returncode == 64, result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port (0: any free port)"]


@pytest.mark.parametrize("env", [{}, {"MARKETO_ENCRYPTION_KEY": "own-key-0455"},
                                 {"MARKETO_CLIENT_SECRET": "own-secret-0456"}])
def test_a_non_loopback_host_needs_both_own_secrets(env) -> None:
    result = _run_emulator("--host", "0.0.0.0", "--port", "0", env=env)
    assert result.returncode == 64 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "MARKETO_ENCRYPTION_KEY and MARKETO_CLIENT_SECRET" in result.stderr
    assert "own-key-0455" not in result.stderr and "own-secret-0456" not in result.stderr


def test_a_non_loopback_host_with_own_secrets_warns_about_the_admin_endpoints() -> None:
    process, lines = start_emulator("--host", "0.0.0.0",
                            env={"MARKETO_ENCRYPTION_KEY": "own-key-0457", "MARKETO_CLIENT_SECRET": "own-secret-0458"})
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "/_emulator/leads" in warning[0] and "/_emulator/merge" in warning[0]
    assert "own-key-0457" not in "\n".join(lines) + out + err
    assert "own-secret-0458" not in "\n".join(lines) + out + err


@pytest.mark.parametrize("option", ["--client-secret", "--encryption-key"])
def test_no_secret_is_taken_from_the_command_line(option: str) -> None:
    result = _run_emulator(option, "argv-secret-0459", "--port", "0")
    assert result.returncode == 64 and f"No such option: {option}" in result.stderr


def test_the_secrets_come_from_the_environment_and_stay_out_of_the_process_arguments() -> None:
    secret, key = "env-client-secret-0460", "env-encryption-key-0461"
    process, lines = start_emulator(env={"MARKETO_CLIENT_SECRET": secret, "MARKETO_ENCRYPTION_KEY": key})
    try:
        arguments = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert secret.encode() not in arguments and key.encode() not in arguments
        base = next(line.split("=", 1)[1] for line in lines if line.startswith("export MARKETO_REST_ENDPOINT="))
        client_id = next(line.split("=", 1)[1] for line in lines if line.startswith("export MARKETO_CLIENT_ID="))
        token_url = f"{base}/identity/oauth/token?grant_type=client_credentials&client_id={client_id}"
        with urllib.request.urlopen(f"{token_url}&client_secret={secret}", timeout=10) as answer:
            assert "access_token" in answer.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{token_url}&client_secret={DEFAULT_CLIENT_SECRET}", timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.mark.parametrize("with_db", [False, True], ids=["in-memory", "database-file"])
def test_the_standalone_emulator_is_the_demo_instance_with_its_static_lists(tmp_path: Path, with_db: bool) -> None:
    process, lines = start_emulator(*(("--db", str(tmp_path / "db.json")) if with_db else ()))
    try:
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        base = exports["MARKETO_REST_ENDPOINT"]
        names = [item["name"] for item in json.loads(urllib.request.urlopen(f"{base}/_emulator/lists",
                                                                            timeout=10).read())]
        assert names == ["VIP Customers", "Webinar 2026-12"]
        leads = json.loads(urllib.request.urlopen(f"{base}/_emulator/leads", timeout=10).read())
        assert 1090238 in {lead["id"] for lead in leads}
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
