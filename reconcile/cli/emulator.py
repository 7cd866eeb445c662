"""`reconcile emulator`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import env
from reconcile.cli.root import DebugOption, app
from reconcile.errors import UsageError


@app.command()
def emulator(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Off loopback it needs your own "
                                                     "MARKETO_ENCRYPTION_KEY and MARKETO_CLIENT_SECRET in the "
                                                     "environment.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")] = 8080,
    user_id: Annotated[Optional[str], typer.Option("--user-id", help="The mktowsUserId it accepts.")] = None,
    client_id: Annotated[Optional[str], typer.Option(
        "--client-id", help="The REST client id it accepts (default: MARKETO_CLIENT_ID, else a demo id).",
        show_default=False)] = None,
    token_ttl: Annotated[float, typer.Option("--token-ttl", min=0.001, help="Seconds a REST access token "
                                                                            "lives.")] = 3600.0,
    db: Annotated[Optional[Path], typer.Option("--db", help="Persist the lead database to this JSON file.")]
    = None,
    field: Annotated[Optional[list[str]], typer.Option("--field", help="Accept this extra (custom) lead field "
                                                                        "(repeatable).")] = None,
    latency: Annotated[float, typer.Option("--latency", min=0.0, help="Seconds added to every call.")] = 0.0,
    fail_rate: Annotated[float, typer.Option("--fail-rate", min=0.0, max=1.0,
                                             help="Fraction of calls that fail.")] = 0.0,
    fail_every: Annotated[int, typer.Option("--fail-every", min=0, help="Fail every Nth call.")] = 0,
    fail_reason: Annotated[str, typer.Option(
        "--fail-reason", help="Why injected failures fail, in each API's own code: internal, unavailable, "
        "timeout, transient, rate, concurrency, quota, bad-parameter, access-denied, auth.")] = "internal",
    fail_code: Annotated[Optional[str], typer.Option(
        "--fail-code", help="Fail with this SOAP (mktows) or REST code instead, on its own API.",
        show_default=False)] = None,
    fail_http_status: Annotated[Optional[int], typer.Option(
        "--fail-http-status", min=500, max=599, help="Fail with this HTTP status instead of an API error.")]
    = None,
    drop_rate: Annotated[float, typer.Option("--drop-rate", min=0.0, max=1.0,
                                             help="Fraction of calls applied, then dropped unanswered.")] = 0.0,
    drop_every: Annotated[int, typer.Option("--drop-every", min=0,
                                            help="Apply, then drop unanswered, every Nth call.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fault randomness.")] = 0,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, help="Records per call.")] = 300,
    rate_calls: Annotated[int, typer.Option("--rate-calls", min=1, help="Calls per rate window.")] = 100,
    rate_window: Annotated[float, typer.Option("--rate-window", min=0.001, help="Rate window, seconds.")] = 20.0,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", min=1, help="Calls at once.")] = 10,
    daily_quota: Annotated[int, typer.Option("--daily-quota", min=1, help="Calls per day.")] = 50_000,
    partition: Annotated[Optional[list[str]], typer.Option("--partition", help="Add a lead partition.")] = None,
    api: Annotated[Optional[str], typer.Option(
        "--api", help="Print the export lines of this API only: soap or rest (env RECONCILE_API). Both "
        "faces serve either way.", show_default=False)] = None,
    debug: DebugOption = False,
) -> int:
    """Run the built-in Marketo emulator, the demo instance (SOAP and REST over one database), until Ctrl-C.

    Lead 1090238 (leads/adopted.yaml), the field crmId for foreign IDs, two static lists. Secrets only
    from the environment (argv is visible): MARKETO_ENCRYPTION_KEY, MARKETO_CLIENT_SECRET."""
    from reconcile import emulator as emu
    from reconcile.remote.registry import ENV_API, select_api
    from reconcile.remote.rest.config import EMULATOR_FOREIGN_ID_FIELD

    environ = env().environ
    key = environ.get("MARKETO_ENCRYPTION_KEY")
    secret = environ.get("MARKETO_CLIENT_SECRET")
    problem = emu.exposure_problem(host, key_chosen=bool(key), secret_chosen=bool(secret))
    if problem:
        raise UsageError(problem)
    try:
        config = emu.EmulatorConfig(
            user_id=user_id or emu.DEFAULT_USER_ID, encryption_key=key or emu.DEFAULT_ENCRYPTION_KEY,
            client_id=client_id or environ.get("MARKETO_CLIENT_ID") or emu.DEFAULT_CLIENT_ID,
            client_secret=secret or emu.DEFAULT_CLIENT_SECRET, token_ttl=token_ttl, db_path=db,
            extra_fields=frozenset({EMULATOR_FOREIGN_ID_FIELD, *(field or ())}), initial_leads=emu.DEMO_LEADS,
            initial_lists=emu.DEMO_LISTS, max_batch=max_batch, rate_calls=rate_calls, rate_window=rate_window,
            max_concurrency=max_concurrency, daily_quota=daily_quota, partitions=frozenset(partition or ()))
        faults = emu.Faults(latency=latency, fail_rate=fail_rate, fail_every=fail_every, fail_reason=fail_reason,
                            fail_code=fail_code, fail_http_status=fail_http_status, drop_rate=drop_rate,
                            drop_every=drop_every, seed=seed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        chosen = select_api(api, environ) if api or environ.get(ENV_API) else None
        return emu.serve_forever_cli(config, host=host, port=port, faults=faults, out=_ExportLines(chosen),
                                     err=env().err)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}; choose another --port (0: any free "
                         "port)") from None


class _ExportLines:
    """The emulator's output with only the chosen API's `export` lines: exporting both credential
    sets would make every later command ask which API to use."""

    def __init__(self, api: str | None):
        self.api = api
        self.section: str | None = None

    def __call__(self, line: str) -> None:
        if line.startswith("# SOAP") or line.startswith("# REST"):
            self.section = "soap" if line.startswith("# SOAP") else "rest"
        elif not line.startswith("export "):
            self.section = None
        if self.api is not None and self.section not in (None, self.api):
            return
        env().out(line)
        if self.api is None and line.startswith("export MARKETO_CLIENT_SECRET"):
            env().out("# with both sets exported, choose one: export RECONCILE_API=rest (or soap)")
