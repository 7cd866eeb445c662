"""The encryption key and request signatures never appear in anything reconcile prints or writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clirunner import invoke

CANARY_KEY = "canary-KEY-6f1d9b2e-do-not-leak"
WRONG_CANARY_KEY = "canary-WRONG-KEY-0a7c44d1"
SIGNATURE = re.compile(r"\b[0-9a-f]{40}\b")


@pytest.fixture
def canary_emulator(emulator_factory):
    return emulator_factory(encryption_key=CANARY_KEY)


def every_byte_written(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def test_canary_key_never_printed_or_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             canary_emulator) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "leads").mkdir()
    leads = tmp_path / "leads" / "a.yaml"
    leads.write_text("leads:\n  - email: a@example.com\n    attributes: {Title: CEO}\n"
                     "  - email: b@example.com\n")
    env = {"MARKETO_SOAP_ENDPOINT": canary_emulator.endpoint, "MARKETO_USER_ID": canary_emulator.config.user_id,
           "MARKETO_ENCRYPTION_KEY": CANARY_KEY}
    outputs = [
        invoke("--debug", "plan", "--out", "tfplan.json", environ=env),
        invoke("--debug", "apply", "tfplan.json", environ=env),
    ]
    leads.write_text(leads.read_text().replace("CEO", "CTO"))
    outputs.append(invoke("apply", "--debug", "--auto-approve", "--batch-size", "1", environ=env))
    leads.write_text(leads.read_text().replace("CTO", "CFO"))
    failed_auth = invoke("apply", "--debug", "--auto-approve",
                         environ={**env, "MARKETO_ENCRYPTION_KEY": WRONG_CANARY_KEY})
    outputs.append(failed_auth)
    outputs.append(invoke("state", "list", "--json", "--debug", environ=env))

    assert [o.exit_code for o in outputs] == [0, 0, 0, 4, 0], [o.stderr[-500:] for o in outputs]
    assert "20014" in failed_auth.stderr
    debug_log = outputs[1].stderr
    assert "requestSignature" in debug_log, "--debug logs the HTTP exchange (redacted)"
    printed = "".join(o.stdout + o.stderr for o in outputs)
    written = every_byte_written(tmp_path).decode("utf-8", errors="replace")
    for text in (printed, written):
        assert CANARY_KEY not in text
        assert WRONG_CANARY_KEY not in text
        assert not SIGNATURE.findall(text), "no request signature may be shown or stored"
