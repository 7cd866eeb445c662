"""Import: adopt existing Marketo leads into a lead file and the state, reading through REST Get Leads."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from reconcile.app.inputs import _notice_if_migrated
from reconcile.app.lists import memberships_reader
from reconcile.app.operation import DEFAULT_LEADS, DEFAULT_MAX_FILE_BYTES, DEFAULT_STATE
from reconcile.app.session import Session
from reconcile.app.transports import _credentials_from_env, _embedded_emulator, _rest_catalog, _rest_client
from reconcile.errors import UsageError


@dataclass(frozen=True)
class ImportOperation:
    """What `reconcile import` is asked to do, once its command line is read."""

    out: Path  # the lead file to write
    lead_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    ids_from: Path | None = None
    fields: tuple[str, ...] | None = None  # None: the standard person fields
    force: bool = False
    leads: Path = DEFAULT_LEADS
    state: Path = DEFAULT_STATE
    api: str | None = None
    use_emulator: bool = False
    concurrency: int = 4
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    lists: bool = False  # also write each lead's static lists


def run_import(session: Session, op: ImportOperation):
    """Read the leads asked for, write them to `op.out` and record them in the state; returns the
    importer's result (what was adopted, how many calls, what the replaced file no longer declares)."""
    from reconcile import adopt
    from reconcile import apply as applier
    from reconcile.adopt import importer
    from reconcile.inputs.validate import load_desired
    from reconcile.store import lock
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance, check_state_path, finish_interrupted_write

    state = op.state
    _import_api(session, op.api, op.use_emulator)
    request = adopt.build_request(list(op.lead_ids), list(op.emails), op.ids_from)
    importer.check_destination(op.out, op.leads, op.force)
    check_state_path(state)
    with contextlib.ExitStack() as stack:
        credentials = (stack.enter_context(_embedded_emulator(session, state, "rest")) if op.use_emulator
                       else _credentials_from_env(session, None, "rest"))
        held = lock.acquire(state, "import", on_warning=session.warn)
        stack.callback(held.release)
        stack.callback(_notice_if_migrated(state, session.note))
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=session.on_event)
        instance = instance_of(credentials.endpoint)
        current = check_instance(current, instance, state)
        desired = load_desired(op.leads, max_file_bytes=op.max_file_bytes)
        client = _rest_client(session, credentials, op.concurrency)
        stack.callback(client.close)
        settings = importer.ImportSettings(request=request, fields=list(op.fields) if op.fields is not None else None,
                                           out=op.out, state_path=state, instance=instance,
                                           concurrency=op.concurrency,
                                           memberships_of=memberships_reader(session, client) if op.lists else None)
        return importer.run_import(client, lambda: _rest_catalog(session, client, state), settings, desired.leads,
                                   current, on_event=session.on_event)


def _import_api(session: Session, api: str | None, use_emulator: bool) -> None:
    from reconcile.remote.registry import ENV_API, select_api
    from reconcile.remote.rest.config import REST

    explicit = api or (session.environ.get(ENV_API) or "").strip() or None
    chosen = select_api(api, session.environ) if explicit or not use_emulator else REST
    if chosen != REST:
        raise UsageError("import reads leads through Marketo's REST API (Get Leads); no live Marketo serves reads "
                         "over SOAP. Use --api rest with MARKETO_REST_ENDPOINT, MARKETO_CLIENT_ID and "
                         "MARKETO_CLIENT_SECRET set (or --emulator)")
