"""`reconcile emulator` in the foreground: what it prints, and when it refuses to listen."""

from __future__ import annotations

import ipaddress
import shlex
import signal
import threading
from typing import Callable

from reconcile.emulator.config import DEFAULT_CLIENT_SECRET, DEFAULT_ENCRYPTION_KEY, EmulatorConfig
from reconcile.emulator.faults import Faults
from reconcile.emulator.httpd import Emulator

ADMIN_ENDPOINTS = "GET /_emulator/leads, POST /_emulator/leads/<id>, DELETE /_emulator/leads/<id>, " \
                  "POST /_emulator/merge, GET|POST /_emulator/lists[/<id>[/leads]]"


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, key_chosen: bool, secret_chosen: bool) -> str | None:
    """Why the emulator must not listen on `host`, or None. Off loopback anyone can reach it, so
    the published demo key and client secret would let any host in; both must be the user's own."""
    if is_loopback(host) or (key_chosen and secret_chosen):
        return None
    return (f"refusing to listen on {host}, which is not a loopback address, with the published demo "
            "credentials: pass --encryption-key and --client-secret (your own values) to serve other hosts")


def exposure_warning(host: str) -> str | None:
    if is_loopback(host):
        return None
    return (f"warning: listening on {host}: any host that reaches it can read and change every lead "
            f"through the unauthenticated admin endpoints ({ADMIN_ENDPOINTS})")


def export_lines(emulator: Emulator) -> list[str]:
    """Shell lines that point `reconcile` (or any client) at a running emulator, SOAP then REST.

    Only the built-in demo key and secret are ever shown; values the user chose are secrets and stay
    unprinted (the lines then refer to the environment variables instead).
    """
    config = emulator.config
    key = (shlex.quote(config.encryption_key) if config.encryption_key == DEFAULT_ENCRYPTION_KEY
           else '"$MARKETO_ENCRYPTION_KEY"  # the key you gave the emulator (not shown)')
    secret = (shlex.quote(config.client_secret) if config.client_secret == DEFAULT_CLIENT_SECRET
              else '"$MARKETO_CLIENT_SECRET"  # the secret you gave the emulator (not shown)')
    return [
        "# SOAP (syncMultipleLeads)",
        f"export MARKETO_SOAP_ENDPOINT={shlex.quote(emulator.endpoint)}",
        f"export MARKETO_USER_ID={shlex.quote(config.user_id)}",
        f"export MARKETO_ENCRYPTION_KEY={key}",
        "# REST (Sync Leads)",
        f"export MARKETO_REST_ENDPOINT={shlex.quote(emulator.rest_endpoint)}",
        f"export MARKETO_CLIENT_ID={shlex.quote(config.client_id)}",
        f"export MARKETO_CLIENT_SECRET={secret}",
    ]


def serve_forever_cli(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8080,
                      faults: Faults | None = None, out: Callable[[str], None] = print,
                      stop: threading.Event | None = None, err: Callable[[str], None] | None = None) -> int:
    """Run an emulator in the foreground for `reconcile emulator` until Ctrl-C (or SIGTERM, or `stop`).

    All output goes through `out`: the endpoints, the leads URL, and `export` lines for both APIs;
    a warning about a non-loopback `host` goes through `err` (default: `out`).
    Returns 0 after a clean stop. Raises OSError when the address cannot be bound.
    """
    stop = stop or threading.Event()
    emulator = Emulator(config, host=host, port=port, faults=faults)
    emulator.start()
    previous_sigterm = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_sigterm = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        out(f"Marketo emulator listening on {emulator.base_url}")
        out(f"  SOAP:  {emulator.endpoint}  (WSDL: {emulator.wsdl_url})")
        out(f"  REST:  {emulator.rest_endpoint}/rest/v1/leads.json  (token: {emulator.rest_endpoint}"
            "/identity/oauth/token)")
        out(f"  leads: {emulator.leads_url}")
        out(f"  database: {config.db_path if config.db_path else 'in memory (lost on exit)'}")
        if emulator.faults.active:
            out(f"  faults: {emulator.faults!r}")
        warning = exposure_warning(host)
        if warning:
            (err or out)(warning)
        out("Point reconcile at it with:")
        for line in export_lines(emulator):
            out(line)
        out("Press Ctrl-C to stop.")
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if in_main_thread and previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    out("Marketo emulator stopped.")
    return 0
