"""`--refresh` and `--refresh-only`: reading Marketo's current values and recording them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from reconcile.app.session import Session
from reconcile.app.transports import _rest_catalog, _rest_client
from reconcile.core.safetext import visible
from reconcile.errors import UsageError

# What apply and `apply --refresh-only` end with when they send nothing.
NOTHING_TO_APPLY = "nothing"
RECORDED = "recorded"
CANCELLED = "cancelled"


def _read_credentials(session: Session, api: str, credentials=None):
    """The REST credentials refresh reads with: the apply's own when it writes through REST, else the
    environment's. No live Marketo answers SOAP reads any more, so SOAP alone cannot refresh."""
    from reconcile.remote.rest.config import REST, REST_VARIABLES, RestCredentials

    if credentials is not None and isinstance(credentials, RestCredentials):
        return credentials
    environ = session.environ
    if api != REST and not any((environ.get(name) or "").strip() for name in REST_VARIABLES):
        raise UsageError("--refresh reads leads through Marketo's REST API (Get Leads); with --api soap it needs "
                         f"the REST credentials too ({', '.join(REST_VARIABLES)}): Marketo retired SOAP, and no "
                         "live instance answers SOAP reads")
    return RestCredentials.from_env(environ)


def _refresh(session: Session, current, state_path: Path, client, concurrency: int, leads=()):
    """Marketo's current values of the state's leads (after checking the state belongs to its instance),
    whether it still has the lead IDs `leads` declare, and the static list memberships (of the lists
    the state records and `leads` name)."""
    from reconcile.app.lists import read_memberships
    from reconcile.apply.refresh import NUMERIC_TYPES, refresh, refresh_calls, refresh_ids
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance

    current = check_instance(current, instance_of(client.credentials.base_url), state_path)
    declared_ids = [lead.lead_id for lead in leads if lead.lead_id is not None]
    calls = refresh_calls(current, declared_ids)
    catalog = _rest_catalog(session, client, state_path)
    with_id = len(refresh_ids(current, declared_ids))
    session.note(f"Refreshing {with_id} lead{'' if with_id == 1 else 's'} from Marketo: {calls} Get Leads "
                 f"call{'' if calls == 1 else 's'}.")

    def progress(event) -> None:
        if event.calls > 1:
            session.note(f"read {event.calls_done}/{event.calls}: {event.leads_read} leads")

    numeric = frozenset(name for name, spec in catalog.fields.items() if (spec.data_type or "") in NUMERIC_TYPES)
    drift = refresh(current, client, catalog.rest_names(), numeric=numeric, declared_ids=declared_ids,
                    concurrency=concurrency, on_progress=progress)
    return read_memberships(session, drift, client, state_path, leads)


def _refresh_for_apply(session: Session, stack, api: str, credentials, current, state_path: Path, options, use_emulator: bool):
    """The drift apply --refresh / --refresh-only works from, and the REST client that read it (kept
    open, so writes through REST share its rate limiter and call slots)."""
    from reconcile.remote.rest.config import REST

    if use_emulator and api != REST:
        raise UsageError("--refresh reads through the REST API: with --emulator, add --api rest")
    reader = _rest_client(session, _read_credentials(session, api, credentials), options.concurrency)
    stack.callback(reader.close)
    return _refresh(session, current, state_path, reader, options.concurrency), reader


def _nothing_to_apply(session: Session, drift, current, state_path: Path, auto_approve: bool, endpoint: str,
                      color: bool) -> str:
    """Nothing to send; after a refresh, the state may still have Marketo's values to learn."""
    if drift is not None and drift.has_drift:
        return _record_refresh(session, drift, current, state_path, auto_approve, endpoint, color, shown=True)
    session.show("Nothing to apply.")
    return NOTHING_TO_APPLY


def _check_refresh_options(refresh: bool, refresh_only: bool, plan_file: Optional[Path]) -> None:
    if refresh and refresh_only:
        raise UsageError("--refresh and --refresh-only are mutually exclusive")
    if (refresh or refresh_only) and plan_file is not None:
        raise UsageError("a saved plan is applied exactly as planned: --refresh and --refresh-only cannot be "
                         "combined with PLAN_FILE")


def _record_refresh(session: Session, drift, current, state_path: Path, auto_approve: bool, endpoint: str,
                    color: bool, shown: bool = False) -> str:
    """`apply --refresh-only`: show what the state will learn, ask, record it. Nothing is sent."""
    if not shown:
        session.show(_refresh_report(drift, color))
    if not drift.has_drift:
        session.show("Nothing to record: the state matches Marketo.")
        return NOTHING_TO_APPLY
    session.show("The state will record Marketo's current values above; nothing is sent to Marketo.")
    if not auto_approve and not session.confirm(f"Record these values from {visible(endpoint)} in "
                                                f"{visible(state_path)}?"):
        return CANCELLED
    written = _write_refreshed(drift, current, state_path)
    session.show(f"Recorded Marketo's values of {len(drift.leads)} lead{'' if len(drift.leads) == 1 else 's'} in "
              f"{visible(state_path)} (serial {written.serial}); nothing was sent to Marketo.")
    return RECORDED


def _refresh_report(drift, color: bool) -> str:
    from reconcile.core.render import render_drift

    return render_drift(drift, color=color)


def _write_refreshed(drift, current, state_path: Path):
    """The refreshed state, written (the caller holds the lock)."""
    from reconcile.store.state import with_leads, write_state

    refreshed = with_leads(current, drift.refreshed.leads)
    write_state(state_path, refreshed)
    return refreshed
