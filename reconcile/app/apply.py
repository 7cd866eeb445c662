"""Apply: under the state's lock, recover an interrupted apply, refresh if asked, plan, show the plan,
ask for confirmation (through the session), send, and report.

The front end hands in an `Operation` and a `Session`; what the user should see comes back as events,
and the outcome as an `ApplyResult`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconcile.app.deletions import confirm_deletions, plan_deletions
from reconcile.app.inputs import _cache_dir, _notice_if_migrated, skipped_files_warning
from reconcile.app.lists import RestLeadDeletes
from reconcile.app.operation import Operation
from reconcile.app.refresh import (CANCELLED, _check_refresh_options, _nothing_to_apply, _record_refresh,
                                   _refresh_for_apply, _write_refreshed)
from reconcile.app.rendering import _calls, _render
from reconcile.app.session import Sending, Sent, Session
from reconcile.app.transports import (_credentials_from_env, _embedded_emulator,
                                      _make_transport, _rest_transport)
from reconcile.core.model import DELETE
from reconcile.core.safetext import visible
from reconcile.errors import ExitStatus, ReconcileError, UsageError

APPLIED = "applied"


@dataclass(frozen=True)
class ApplyResult:
    """How an apply ended: applied, nothing (to apply or record), recorded (refresh-only), or cancelled."""

    outcome: str
    report: Any = None  # the apply's report, when it sent something


def run_apply(session: Session, op: Operation) -> ApplyResult:
    """`reconcile apply`: everything after the command line is read."""
    from reconcile import apply as applier
    from reconcile.remote import registry
    from reconcile.store import lock, planfile
    from reconcile.store.instance import instance_of
    from reconcile.store.git import refuse_untrusted_runtime_files
    from reconcile.store.state import check_instance, check_state_path, finish_interrupted_write

    _check_refresh_options(op.refresh, op.refresh_only, op.plan_file)
    saved = planfile.load(op.plan_file) if op.plan_file is not None else None
    if saved is not None:
        if op.targets:
            raise UsageError("a saved plan is applied exactly as planned, with the targets it was planned with: "
                             "--target cannot be combined with PLAN_FILE")
        op = replace(op, leads=Path(saved.leads_dir), state=Path(saved.state_path),
                     targets=tuple(saved.plan.get("targets") or ()))
    if op.use_emulator and op.endpoint:
        raise UsageError("--emulator and --endpoint are mutually exclusive")
    check_state_path(op.state)
    refuse_untrusted_runtime_files(op.state)
    chosen, foreign_id_field = _api_for_apply(session, op.api, op.endpoint, op.use_emulator, op.foreign_id_field)
    largest = registry.get(chosen).max_records
    op = replace(op, api=chosen, foreign_id_field=foreign_id_field,
                 apply=replace(op.apply, batch_size=op.batch_size or largest, max_batch_size=largest))
    state = op.state
    with contextlib.ExitStack() as stack:
        emulator_rest: list = []
        credentials = (stack.enter_context(_embedded_emulator(session, state, chosen, emulator_rest))
                       if op.use_emulator else _credentials_from_env(session, op.endpoint, chosen))
        held = lock.acquire(state, "apply", on_warning=session.warn)
        stack.callback(held.release)
        stack.callback(_notice_if_migrated(state, session.note))
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=session.on_event)
        current = check_instance(current, instance_of(credentials.endpoint), state)
        return _plan_and_send(session, stack, op, saved, credentials, current, emulator_rest[0] if emulator_rest else None)


def _plan_and_send(session: Session, stack, op: Operation, saved, credentials, current, emulator_rest=None
                   ) -> ApplyResult:
    """Apply under the lock: refresh if asked, plan, show, confirm, send, report."""
    from reconcile.apply import PlannedCalls
    from reconcile.core import render
    from reconcile.core.declared_once import check_declared_once
    from reconcile.core.drift import check_declared_ids_exist
    from reconcile.core.planner import plan as make_plan
    from reconcile.inputs.validate import load_desired
    from reconcile.remote import registry
    from reconcile.remote.rest.config import REST
    from reconcile.store import planfile

    options = op.apply
    drift, reader = (_refresh_for_apply(session, stack, op.api, credentials, current, op.state, options,
                                        op.use_emulator)
                     if op.refresh or op.refresh_only else (None, None))
    if op.refresh_only:
        return ApplyResult(_record_refresh(session, drift, current, op.state, op.auto_approve, credentials.endpoint,
                                           op.color))
    skipped = skipped_files_warning(op.leads)
    if skipped:
        session.warn(skipped)
    # The files' parses are shared with plan's: an apply after a plan of the same files parses none.
    desired = load_desired(op.leads, cache_dir=_cache_dir(op.state, session.environ),
                           max_file_bytes=op.max_file_bytes)
    if saved is not None:
        planfile.check_fresh(saved, desired=desired, state=current, state_path=op.state)
    check_declared_once(desired.leads, current if drift is None else drift.refreshed)
    if drift is not None:
        check_declared_ids_exist(desired.leads, drift)
    plan = make_plan(desired.leads, current if drift is None else drift.refreshed, batch_size=options.batch_size,
                     targets=op.targets)
    plan = plan_deletions(plan, op.api, op.delete_orphans, op.max_deletes, options.forget_orphans)
    has_work = plan.has_changes or (options.forget_orphans and plan.summary["orphaned"])
    if not has_work:
        session.show(_render(plan, "text", op.color, _calls(plan, op.api, options.dedup_enabled,
                                                            op.foreign_id_field), drift,
                             against_state=drift is None))
        return ApplyResult(_nothing_to_apply(session, drift, current, op.state, op.auto_approve,
                                             credentials.endpoint, op.color))
    if op.api == REST:
        transport = _rest_transport(session, credentials, desired, plan, op.state, options, op.foreign_id_field,
                                    reader)
    else:  # SOAP writes: one rate window with the refresh's reads, as in Marketo
        transport = _make_transport(session, credentials, options.concurrency,
                                    reader.http.rate_limiter if reader is not None else None)
    stack.callback(transport.close)
    memberships = _memberships(session, stack, op, transport, desired, emulator_rest) if plan.has_list_changes \
        else None
    calls = PlannedCalls.of(plan, transport, options)
    calls.start_building(transport)  # envelopes are built while the plan is printed and confirmed
    described = registry.get(op.api)
    shown = render.Calls(described.call_name, len(calls.batches) if described.group_of is not None else None)
    session.show(_render(plan, "text", op.color, shown, drift))
    if saved is None and not op.auto_approve \
            and not session.confirm(f"Apply these changes to {visible(credentials.endpoint)}?"):
        return ApplyResult(CANCELLED)
    if not confirm_deletions(session, plan, op.allow_delete):
        return ApplyResult(CANCELLED)
    if drift is not None and drift.has_drift:
        current = _write_refreshed(drift, current, op.state)
    deletes = RestLeadDeletes(transport.client, options.concurrency) if plan.count(DELETE) else None
    report = _run_apply(session, plan, current, op.state, transport, options, calls, memberships, deletes)
    session.show(report.summary("complete"))
    return ApplyResult(APPLIED, report)


def _memberships(session: Session, stack, op: Operation, transport, desired, emulator_rest):
    """The list calls of this apply, with the lead files' list names resolved against the instance:
    through the REST client that applies, or (SOAP) the emulator's REST face or REST credentials."""
    from reconcile.app.inputs import _rest_instance
    from reconcile.app.lists import memberships_for, resolve_lists, rest_fetch, unresolvable
    from reconcile.app.transports import _rest_client
    from reconcile.remote.rest.config import ENV_REST_ENDPOINT, REST, RestCredentials

    if op.api == REST:
        client = transport.client
    else:
        rest = emulator_rest
        if rest is None and (session.environ.get(ENV_REST_ENDPOINT) or "").strip():
            rest = RestCredentials.from_env(session.environ)
        client = _rest_client(session, rest, 2) if rest is not None else None
        if client is not None:
            stack.callback(client.close)
    instance = client.credentials.instance if client is not None else _rest_instance(session.environ)
    resolved = resolve_lists(session, desired.leads, op.state, instance, rest_fetch(client) if client else None)
    if resolved is None:
        raise unresolvable(instance)
    return memberships_for(op.api, transport, resolved, op.apply.concurrency)


def _api_for_apply(session: Session, api: str | None, endpoint: str | None, use_emulator: bool,
                   foreign_id_field: str | None) -> tuple[str, str | None]:
    """The API apply talks to, and the REST field that carries foreign IDs (if any)."""
    from reconcile.remote.registry import select_api
    from reconcile.remote.rest.config import REST
    from reconcile.remote.rest.config import foreign_id_field as choose_foreign_id_field

    chosen = select_api(api, session.environ, emulator=use_emulator)
    if chosen == REST and endpoint:
        raise UsageError("--endpoint is the SOAP endpoint; the REST API reads MARKETO_REST_ENDPOINT")
    return chosen, choose_foreign_id_field(foreign_id_field, session.environ, emulator=use_emulator)


def _run_apply(session: Session, plan, current, state_path: Path, transport, options, calls=None, memberships=None,
               deletes=None):
    """Run the applier; between `Sending` and `Sent` the session's `stop` asks it to stop gracefully."""
    from reconcile import apply as applier

    session.on_event(Sending(records=plan.records_to_send, calls=plan.calls))
    try:
        return applier.apply_plan(plan, current, state_path, transport, options=options, on_event=session.on_event,
                                  stop=session.stop, calls=calls, memberships=memberships, deletes=deletes)
    except ReconcileError as exc:
        report = getattr(exc, "report", None)
        if report is not None:
            session.on_event(Sent())
            session.show(report.summary("interrupted" if exc.exit_status == ExitStatus.INTERRUPTED else "failed"))
        raise
    finally:
        session.on_event(Sent())
