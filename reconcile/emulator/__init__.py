"""A faithful local emulator of Marketo's SOAP endpoint for syncMultipleLeads.

Marketo retired its SOAP API; this emulator keeps `reconcile` usable and testable without an
account. In-process use::

    from reconcile.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(db_path=Path(".reconcile/emulator.json"))) as emu:
        emu.endpoint          # http://127.0.0.1:PORT/soap/mktows/2_1
        emu.faults.latency = 0.2
        emu.leads()           # the lead database

See `server` for the HTTP routes, the check order and the fault codes, `store` for the
syncMultipleLeads semantics, `limits` for the rate/concurrency/quota limits and `faults` for fault
injection.
"""

from reconcile.emulator.config import (
    DEFAULT_ENCRYPTION_KEY,
    DEFAULT_FIELDS,
    DEFAULT_USER_ID,
    EmulatorConfig,
)
from reconcile.emulator.faults import Faults
from reconcile.emulator.store import DEMO_LEADS, StoreError, create_database
from reconcile.emulator.server import (
    API_VERSION,
    CallRecord,
    Emulator,
    export_lines,
    serve_forever_cli,
)

__all__ = [
    "API_VERSION",
    "CallRecord",
    "DEFAULT_ENCRYPTION_KEY",
    "DEFAULT_FIELDS",
    "DEFAULT_USER_ID",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "DEMO_LEADS",
    "StoreError",
    "create_database",
    "export_lines",
    "serve_forever_cli",
]
