"""A faithful local emulator of one Marketo instance: a SOAP face and a REST face over one lead database.

Marketo retired its SOAP API; this emulator keeps `reconcile` usable and testable without an
account, through either API. In-process use::

    from reconcile.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(db_path=Path(".reconcile/emulator.json"))) as emu:
        emu.endpoint          # SOAP: http://127.0.0.1:PORT/soap/mktows/2_1
        emu.rest_endpoint     # REST: http://127.0.0.1:PORT (/identity/oauth/token, /rest/v1/...)
        emu.faults.latency = 0.2
        emu.leads()           # the lead database
        emu.calls             # the call log: api, operation, outcome, code of every call

Layout: `httpd` (the HTTP server and the `Emulator`), `soap_api` and `rest_api` (the faces, each
mapping the neutral `reasons` to its API's codes), `soap_rules` and `rest_rules` (what a write
means in each API), `store` (the one database), `fields` (Describe and the SOAP <-> REST names),
`lists` (static lists and their members, beside the leads), `tokens` (OAuth), `limits`, `faults`,
`races` (one key in two calls at once), `calls` (the call log), `admin` and `lists_admin` (drift,
merge and list endpoints), `console` (`reconcile emulator` in the foreground).
"""

from reconcile.emulator.calls import CallRecord
from reconcile.emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ENCRYPTION_KEY,
    DEFAULT_FIELDS,
    DEFAULT_USER_ID,
    EmulatorConfig,
)
from reconcile.emulator.console import exposure_problem, export_lines, serve_forever_cli
from reconcile.emulator.faults import Faults
from reconcile.emulator.httpd import API_VERSION, Emulator
from reconcile.emulator.reasons import Reason
from reconcile.emulator.lists import DEMO_LISTS, create_database
from reconcile.emulator.store import DEMO_LEADS, StoreError

__all__ = [
    "API_VERSION",
    "CallRecord",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ENCRYPTION_KEY",
    "DEFAULT_FIELDS",
    "DEFAULT_USER_ID",
    "DEMO_LEADS",
    "DEMO_LISTS",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "Reason",
    "StoreError",
    "create_database",
    "exposure_problem",
    "export_lines",
    "serve_forever_cli",
]
