"""Shared pytest fixtures and helpers: a workspace builder, the v1 state literal, the emulator."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
LINEAGE = "0c1d2e3f-0000-4000-8000-000000000000"


# --- a working directory: lead files, a state, the current directory -----------------------------


@pytest.fixture
def make_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`make_workspace({"people.yaml": text, "team/b.yaml": text}, state=text)`: a `leads/` directory
    holding those files (none: an empty one), the state file if given, and the current directory
    there. Returns the directory (`tmp_path` unless `root` names another)."""

    def build(files: Mapping[str, str] | None = None, state: str | None = None, root: Path | None = None) -> Path:
        root = tmp_path if root is None else root
        (root / "leads").mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            path = root / "leads" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if state is not None:
            (root / "reconcile.state.json").write_text(state)
        monkeypatch.chdir(root)
        return root

    return build


def wait_until(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    """Poll `condition()` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout} s"
        time.sleep(0.001)


def v1_state(leads: Mapping[str, object] | None = None, *, serial: int = 1, lineage: str = LINEAGE) -> dict:
    """A format 1 state (one JSON file, the format before shards) holding `leads` by state key."""
    return {"format_version": 1, "lineage": lineage, "serial": serial, "leads": dict(leads or {})}


def v1_state_text(leads: Mapping[str, object] | None = None, **kwargs) -> str:
    return json.dumps(v1_state(leads, **kwargs), indent=2, sort_keys=True) + "\n"


# --- Marketo emulator fixtures (reconcile/emulator) ------------------------------------------------

EMULATOR_TEST_USER_ID = "test_user_1_809934544BFABAE58E5D27"
EMULATOR_TEST_ENCRYPTION_KEY = "test-encryption-key-27272727aa"


@pytest.fixture
def emulator_factory():
    """Start emulators with custom configs: `emulator_factory(max_batch=3, db_path=...)`.

    Keyword arguments go to EmulatorConfig (the test user/key are the defaults); `faults=`, `host=`
    and `port=` go to Emulator. Every emulator started this way is stopped after the test.
    """
    from reconcile.emulator import Emulator, EmulatorConfig

    started = []

    def start(faults=None, host="127.0.0.1", port=0, **config_kwargs):
        config_kwargs.setdefault("user_id", EMULATOR_TEST_USER_ID)
        config_kwargs.setdefault("encryption_key", EMULATOR_TEST_ENCRYPTION_KEY)
        emulator = Emulator(EmulatorConfig(**config_kwargs), host=host, port=port, faults=faults)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in reversed(started):
        emulator.stop()


@pytest.fixture
def emulator(emulator_factory):
    """A started in-memory emulator with Marketo's default limits and a known test user.

    `emulator.endpoint`, `emulator.user_id` / `emulator.encryption_key` (also on `emulator.config`),
    `emulator.leads()`, `emulator.faults`, `emulator.calls`.
    """
    return emulator_factory()


@pytest.fixture
def emulator_env(emulator, monkeypatch):
    """The `emulator` fixture, with MARKETO_SOAP_ENDPOINT/USER_ID/ENCRYPTION_KEY set to reach it."""
    monkeypatch.setenv("MARKETO_SOAP_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("MARKETO_USER_ID", emulator.user_id)
    monkeypatch.setenv("MARKETO_ENCRYPTION_KEY", emulator.encryption_key)
    return emulator


# --- transport and apply engine fixtures (reconcile/remote/soap, reconcile/apply) ----------------


@pytest.fixture
def transport_for():
    """Build a SoapTransport for an emulator: `transport_for(emu, key=..., **SoapTransport kwargs)`.

    Backoff is instant by default (a no-op `sleep`, tiny delays) so retry tests stay fast; pass
    `sleep=` or `retry=` to observe or change it. Every transport is closed after the test.
    """
    from reconcile.remote.soap.transport import Credentials, RetryPolicy, SoapTransport

    made = []

    def make(emulator, *, key=None, user_id=None, **kwargs):
        credentials = Credentials(emulator.endpoint, user_id or emulator.user_id, key or emulator.encryption_key)
        kwargs.setdefault("sleep", lambda seconds: None)
        kwargs.setdefault("retry", RetryPolicy(max_attempts=6, max_elapsed=120.0, base_delay=0.01, max_delay=0.05))
        transport = SoapTransport(credentials, **kwargs)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def recording_session():
    """A requests.Session class that keeps every request body it sends (`.bodies`)."""
    import requests

    class RecordingSession(requests.Session):
        def __init__(self):
            super().__init__()
            self.bodies = []

        def request(self, method, url, *args, **kwargs):
            data = kwargs.get("data")
            if data is not None:
                self.bodies.append(bytes(data))
            return super().request(method, url, *args, **kwargs)

    return RecordingSession


@pytest.fixture
def lead_factory():
    """`lead_factory(n, prefix="u", **attributes)`: n email-keyed Leads u0000@example.com, u0001@...

    Numbers are zero-padded so that the plan's order (sorted by identity) is the numeric order.
    """
    from reconcile.errors import Location
    from reconcile.core.model import Lead

    def make(n, prefix="u", start=0, **attributes):
        attributes = attributes or {"FirstName": "First", "Title": None}
        return [Lead(location=Location("leads/test.yaml", i + 1), email=f"{prefix}{i:04d}@example.com",
                     attributes=dict(attributes)) for i in range(start, start + n)]

    return make


def assert_state_matches_emulator(state, emulator):
    """Every state lead exists in the emulator with the same keys and attributes, and vice versa."""
    db = {lead["id"]: lead for lead in emulator.leads()}
    ids = [lead.lead_id for lead in state.leads.values()]
    assert len(ids) == len(set(ids)), "two state leads share a lead ID"
    assert sorted(ids) == sorted(db), "state and emulator hold different leads"
    for key, lead in state.leads.items():
        remote = db[lead.lead_id]
        if lead.email is not None:
            assert (remote["email"] or "").lower() == lead.email.lower(), key
        if lead.foreign_sys_person_id is not None:
            assert remote["foreignSysPersonId"] == lead.foreign_sys_person_id, key
            assert remote["foreignSysType"] == lead.foreign_sys_type, key
        for name, value in lead.attributes.items():
            assert remote["attributes"].get(name) == value, (key, name)
    emails = [(lead["email"] or "").lower() for lead in db.values() if lead["email"]]
    assert len(emails) == len(set(emails)), "duplicate leads (same email) in the emulator"


@pytest.fixture
def state_matches_emulator():
    return assert_state_matches_emulator


@pytest.fixture(autouse=True)
def _own_user_cache(tmp_path_factory, monkeypatch):
    """Each test its own user cache directory (where reconcile keeps caches outside the repository)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    monkeypatch.delenv("RECONCILE_CACHE_DIR", raising=False)


def make_leads(emu, count: int) -> list[int]:
    """`count` leads created in the emulator `emu` (lead0@example.com, ...): their Marketo IDs."""
    with emu.store.transaction() as tx:
        ids = []
        for number in range(count):
            lead = tx.create()
            tx.set_email(lead, f"lead{number}@example.com")
            ids.append(lead["id"])
    return ids


def emulator_environ(emulator, api: str = "rest") -> dict[str, str]:
    """Both APIs' credentials for the test `emulator`, with RECONCILE_API choosing `api`."""
    return {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
            "MARKETO_CLIENT_SECRET": emulator.config.client_secret, "MARKETO_SOAP_ENDPOINT": emulator.endpoint,
            "MARKETO_USER_ID": EMULATOR_TEST_USER_ID, "MARKETO_ENCRYPTION_KEY": EMULATOR_TEST_ENCRYPTION_KEY,
            "RECONCILE_API": api}
