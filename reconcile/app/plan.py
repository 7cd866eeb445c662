"""Plan: read the lead files and the state (and Marketo, with --refresh), plan, render, save.

A plan to print is cached as rendered text in the user's cache directory (reconcile/inputs/cache.py),
keyed by everything it is made from. Everything the user sees is handed to the session as events.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

from reconcile.app.deletions import refuse_without_delete_call
from reconcile.app.inputs import _cache_dir, _load_inputs, _rest_instance
from reconcile.app.lists import check_list_names
from reconcile.app.operation import Operation
from reconcile.app.refresh import _read_credentials, _refresh
from reconcile.app.rendering import _calls, _render
from reconcile.app.session import Session
from reconcile.app.transports import _rest_client
from reconcile.core.safetext import visible
from reconcile.errors import UsageError

REFRESH_CONCURRENCY = 4


@dataclass(frozen=True)
class PlanResult:
    """What a plan found: whether apply has something to do, and whether Marketo drifted."""

    has_changes: bool
    has_drift: bool = False


def _plan_and_render(session: Session, op: Operation) -> PlanResult:
    """Plan `op` and show it (from the cache of rendered plans when its inputs are unchanged)."""
    from reconcile.store import planfile
    from reconcile.core.declared_once import check_declared_once
    from reconcile.core.drift import check_declared_ids_exist
    from reconcile.core.planner import plan as make_plan
    from reconcile.remote import registry
    from reconcile.store.git import refuse_untrusted_runtime_files
    from reconcile.store.journal import journal_path

    leads, state, out, format, api, refresh = op.leads, op.state, op.out, op.format, op.api, op.refresh
    refuse_untrusted_runtime_files(state)
    if out is not None:
        if refresh:
            raise UsageError("--refresh and --out cannot be combined: a saved plan is applied against the state "
                             "it was made from; run `reconcile apply --refresh` instead")
        planfile.check_destination(out)
    # A plan to print (not to save), made without reading Marketo and with no journal to replay, is a
    # function of its inputs alone: the lead files, the state, the schema, the options and the API context.
    # A targeted plan is never taken from (or put in) that cache: it shows only part of the plan.
    reusable = out is None and not refresh and not op.targets and not journal_path(state).exists()
    cached = _plan_cache(session, op) if reusable else None
    hit = cached.get() if cached is not None else None
    if hit is not None:
        session.show(hit[1])
        return PlanResult(hit[0])
    desired, current = _load_inputs(leads, state, op.max_file_bytes, session.environ)
    workspace, instance = _cache_dir(state, session.environ), _rest_instance(session.environ)
    lists_before = _lists_digest(workspace, instance)
    check_list_names(session, desired.leads, state)
    fetched_lists = lists_before != _lists_digest(workspace, instance)
    current, recovery, state_hash = _preview_recovery(state, current)
    check_declared_once(desired.leads, current)
    drift = None
    if refresh:
        reader = _rest_client(session, _read_credentials(session, api), REFRESH_CONCURRENCY)
        with contextlib.closing(reader) as client:
            drift = _refresh(session, current, state, client, REFRESH_CONCURRENCY, desired.leads)
        check_declared_ids_exist(desired.leads, drift)
        current = drift.refreshed
        check_declared_once(desired.leads, current)  # Marketo's answers may make two declarations one lead
    plan = make_plan(desired.leads, current, batch_size=registry.get(api).max_records, targets=op.targets)
    refuse_without_delete_call(plan, api)
    if out is not None:
        planfile.save(out, plan, desired=desired, state=current, state_path=state, leads_dir=leads,
                      state_hash=state_hash)
    rendered = _with_recovery(session, _render(plan, format, op.color, _calls(plan, api), drift,
                                               against_state=not refresh, compact=op.compact, full=op.full),
                              recovery, format)
    rendered = _with_foreign_id_note(session, op, rendered, plan)
    if cached is not None and not recovery:
        # the instance's lists may have been fetched and kept by this run: the next run's key has them
        cached = _plan_cache(session, op) if fetched_lists else cached
        if cached is not None:
            cached.put(desired.files_hash, plan.has_changes, rendered)
    session.show(rendered)
    if out is not None and format == "text":
        session.show(f"Saved the plan to {visible(out)}; apply it exactly with: reconcile apply {visible(out)}")
    return PlanResult(plan.has_changes, drift is not None and drift.has_drift)


def _plan_cache(session: Session, op: Operation):
    """The cache of rendered plans for these inputs, or None (not worth it, or not readable cheaply).
    Every option that changes what plan prints is in `options`: one line each."""
    from reconcile.inputs.cache import PlanCache
    from reconcile.inputs.fields import load_catalog
    from reconcile.inputs.validate import schema_bytes
    from reconcile.remote.rest.config import foreign_id_field

    instance = _rest_instance(session.environ)
    workspace = _cache_dir(op.state, session.environ)
    catalog = load_catalog(workspace, instance)
    options = {"format": op.format, "compact": op.compact, "full": op.full, "color": op.color,
               "max_file_size": op.max_file_bytes}
    context = (f"api={op.api} instance={instance} describe={catalog.fingerprint if catalog else None} "
               f"foreign-id-field={foreign_id_field(None, session.environ)!r} "
               f"lists={_lists_digest(workspace, instance)}")
    return PlanCache.open(workspace, op.leads, op.state, op.max_file_bytes,
                          schema_bytes(), options, context)


def _lists_digest(workspace, instance: str | None) -> str | None:
    """What the kept static lists of the instance resolve list names to (not when they were fetched)."""
    from reconcile.inputs.listcatalog import load_lists

    known = load_lists(workspace, instance)
    if known is None:
        return None
    pairs = sorted((item.id, item.name) for item in known)
    return hashlib.sha256(repr(pairs).encode("utf-8", "surrogateescape")).hexdigest()


def _with_foreign_id_note(session: Session, op: Operation, rendered: str, plan) -> str:
    """A REST plan with foreign-ID leads says, under the plan, when apply would refuse them and how to
    name the field that carries their IDs."""
    from reconcile.apply.foreignid import foreign_id_leads, missing_field_note
    from reconcile.inputs.fields import load_catalog
    from reconcile.remote.rest.config import REST, foreign_id_field

    if op.api != REST or op.format == "json":
        return rendered
    field, problem = foreign_id_field(None, session.environ), None
    catalog = (load_catalog(_cache_dir(op.state, session.environ), _rest_instance(session.environ))
               if field is not None else None)
    if catalog is not None:
        try:
            catalog.resolve_rest_name(field, "the foreign-ID field")
        except UsageError as exc:
            problem = str(exc)
    note = missing_field_note(foreign_id_leads(plan), field, problem)
    if note is None:
        return rendered
    body, _, summary = rendered.rstrip("\n").rpartition("\n")  # the summary line stays the last one
    return f"{body}\n{note}\n{summary}\n"


def _preview_recovery(state_path: Path, current):
    """The state as apply will see it: a leftover journal replayed, read-only. Returns that state,
    lines saying what the replay changes, and the hash the state file will have once apply has made
    the replay durable (None when it stays as it is)."""
    from reconcile.store.journal import journal_path

    if not journal_path(state_path).exists():
        return current, [], None
    from reconcile import apply as applier  # the apply engine's imports: only when there is a journal
    from reconcile.store.state import content_hash_of

    recovered, report = applier.recover(state_path, commit=False)
    lines = applier.recovery_lines(current, recovered, report)
    state_hash = content_hash_of(recovered) if report.activity and report.changed else None
    return recovered, lines, state_hash


def _with_recovery(session: Session, rendered: str, lines: list[str], fmt: str) -> str:
    if not lines:
        return rendered
    if fmt == "json":
        for line in lines:
            session.note(f"warning: {line}")
        return rendered
    if fmt == "markdown":
        from reconcile.core.render import fence_for

        body = "\n".join(lines)
        fence = fence_for(body)
        return f"**Apply first recovers an interrupted apply's journal:**\n\n{fence}text\n{body}\n{fence}\n\n" + rendered
    return "\n".join(lines) + "\n\n" + rendered
