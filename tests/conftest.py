"""Shared pytest fixtures."""


# --- Marketo SOAP emulator fixtures (reconcile/emulator) ------------------------------------------
import pytest as _emu_pytest

EMULATOR_TEST_USER_ID = "test_user_1_809934544BFABAE58E5D27"
EMULATOR_TEST_ENCRYPTION_KEY = "test-encryption-key-27272727aa"


@_emu_pytest.fixture
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


@_emu_pytest.fixture
def emulator(emulator_factory):
    """A started in-memory emulator with Marketo's default limits and a known test user.

    `emulator.endpoint`, `emulator.user_id` / `emulator.encryption_key` (also on `emulator.config`),
    `emulator.leads()`, `emulator.faults`, `emulator.calls`.
    """
    return emulator_factory()


@_emu_pytest.fixture
def emulator_env(emulator, monkeypatch):
    """The `emulator` fixture, with MARKETO_SOAP_ENDPOINT/USER_ID/ENCRYPTION_KEY set to reach it."""
    monkeypatch.setenv("MARKETO_SOAP_ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("MARKETO_USER_ID", emulator.user_id)
    monkeypatch.setenv("MARKETO_ENCRYPTION_KEY", emulator.encryption_key)
    return emulator
