"""Plan: read the lead files and the state (and Marketo, with --refresh), plan, render, save.

A plan to print is cached as rendered text (reconcile/inputs/plancache.py); apply shows that same text
for the same inputs. Everything the user sees is handed to the session as events.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from reconcile.app.inputs import _load_inputs, _rest_instance
from reconcile.app.deletions import refuse_without_delete_call
from reconcile.app.lists import check_list_names
from reconcile.app.operation import Operation
from reconcile.app.refresh import _read_credentials, _refresh
from reconcile.app.rendering import _calls, _render
from reconcile.app.session import EncodedOutput, Session
from reconcile.app.transports import _rest_client
from reconcile.core.safetext import visible
from reconcile.errors import UsageError

REFRESH_CONCURRENCY = 4


@dataclass(frozen=True)
class PlanResult:
    """What a plan found: whether apply has something to do, and whether Marketo drifted."""

    has_changes: bool
    has_drift: bool = False


def _describe_cache_stamp(state_path: Path) -> str:
    """What identifies the describe caches beside the state (a refreshed one changes what plan refuses);
    not the markers of lead files checked against them (`.checked-*`), which a check leaves behind."""
    from reconcile.inputs.fields import cache_dir

    try:
        entries = sorted(os.scandir(cache_dir(state_path)), key=lambda entry: entry.name)
    except OSError:
        return "none"
    return ";".join(f"{e.name}:{e.stat().st_size}:{e.stat().st_mtime_ns}" for e in entries
                    if e.is_file() and not e.name.startswith("."))


def _plan_and_render(session: Session, op: Operation) -> PlanResult:
    """Plan `op` and show it (from the cache of rendered plans when its inputs are unchanged)."""
    from reconcile.store import planfile
    from reconcile.core.declared_once import check_declared_once
    from reconcile.core.planner import plan as make_plan
    from reconcile.remote import registry
    from reconcile.store.journal import journal_path

    leads, state, out, format, api, refresh = op.leads, op.state, op.out, op.format, op.api, op.refresh
    if out is not None:
        if refresh:
            raise UsageError("--refresh and --out cannot be combined: a saved plan is applied against the state "
                             "it was made from; run `reconcile apply --refresh` instead")
        planfile.check_destination(out)
    # A plan to print (not to save), made without reading Marketo and with no journal to replay, is a
    # function of its inputs' bytes alone: the lead files, the state, the describe cache and the options.
    # A targeted plan is never taken from (or put in) that cache: it shows only part of the plan.
    reusable = out is None and not refresh and not op.targets and not journal_path(state).exists()
    if reusable:
        from reconcile.inputs.cache import cache_dir_for
        from reconcile.inputs.plancache import PlanOutputCache

        outputs = PlanOutputCache(cache_dir_for(state))
        context = _plan_context(api, state, session.environ)
        key = outputs.key(leads, state, op.max_file_bytes, _plan_output_options(op, context))
        cached = outputs.get(key)
        if cached is None and outputs.wants(key):
            cached = _plan_from_pieces(session, op, context, outputs, key)
        if cached is not None:
            has_changes, rendered = cached
            if isinstance(rendered, bytes):  # from the cache, as stored
                session.on_event(EncodedOutput(rendered))
            else:
                session.show(rendered)
            return PlanResult(has_changes)
    desired, current = _load_inputs(leads, state, op.max_file_bytes, session.environ)
    check_list_names(session, desired.leads, state)
    current, recovery, state_hash = _preview_recovery(state, current)
    check_declared_once(desired.leads, current)
    drift = None
    if refresh:
        reader = _rest_client(session, _read_credentials(session, api), REFRESH_CONCURRENCY)
        with contextlib.closing(reader) as client:
            drift = _refresh(session, current, state, client, REFRESH_CONCURRENCY, desired.leads)
        current = drift.refreshed
        check_declared_once(desired.leads, current)  # Marketo's answers may make two declarations one lead
    plan = make_plan(desired.leads, current, batch_size=registry.get(api).max_records, targets=op.targets)
    refuse_without_delete_call(plan, api)
    if out is not None:
        planfile.save(out, plan, desired=desired, state=current, state_path=state, leads_dir=leads,
                      state_hash=state_hash)
    rendered = _with_recovery(session, _render(plan, format, op.color, _calls(plan, api), drift,
                                               against_state=not refresh, compact=op.compact), recovery, format)
    if reusable and not recovery:
        outputs.put(key, desired.files_hash, state, plan.has_changes, rendered)
    session.show(rendered)
    if reusable and not recovery and outputs.wants(key) and outputs.still(key, desired.files_hash, state):
        from reconcile.inputs.planpieces import store_pieces

        store_pieces(cache_dir_for(state), key.state_found, context, desired, current, plan)
    if out is not None and format == "text":
        session.show(f"Saved the plan to {visible(out)}; apply it exactly with: reconcile apply {visible(out)}")
    return PlanResult(plan.has_changes, drift is not None and drift.has_drift)


def _plan_context(api: str, state: Path, environ) -> str:
    """What a plan reads besides the lead files and the state."""
    return f"api={api} fields={_rest_instance(environ)}:{_describe_cache_stamp(state)}"


def _plan_output_options(op: Operation, context: str) -> str:
    return f"{op.format} color={op.color} compact={op.compact} {context}"


def _planned_text(session: Session, op: Operation, desired) -> bytes | None:
    """The text `reconcile plan` printed for exactly these lead files (as apply read them) and this
    state, UTF-8 encoded, if it is in the plan cache: apply shows the same actions, so it need not
    render them again."""
    from reconcile.inputs.cache import cache_dir_for
    from reconcile.inputs.plancache import PlanOutputCache
    from reconcile.store.journal import journal_path

    if journal_path(op.state).exists():  # plan does not cache what it shows over an unfinished apply
        return None
    outputs = PlanOutputCache(cache_dir_for(op.state))
    as_plan_prints_it = Operation(format="text", compact=False, color=op.color)
    key = outputs.key(op.leads, op.state, op.max_file_bytes,
                      _plan_output_options(as_plan_prints_it, _plan_context(op.api, op.state, session.environ)))
    if key is None or key.files_hash != desired.files_hash:
        return None
    cached = outputs.get(key)
    return cached[1] if cached is not None else None


def _show_plan_for_apply(session: Session, op: Operation, plan, desired, calls, drift) -> None:
    """The plan as apply shows it: from plan's cached text of the same inputs when there is one."""
    from reconcile.core.render import text_for_apply

    if drift is None and op.plan_file is None and not op.targets:
        planned = _planned_text(session, op, desired)
        text = text_for_apply(planned, plan, op.color, calls) if planned is not None else None
        if text is not None:
            session.on_event(EncodedOutput(text))
            return
    session.show(_render(plan, "text", op.color, calls, drift))


def _plan_from_pieces(session: Session, op: Operation, context: str, outputs, key) -> tuple[bool, str] | None:
    """A plan assembled from the cached pieces of unchanged lead files and the changed files planned
    alone, rendered and cached; None when it must be planned from scratch."""
    from reconcile.inputs.cache import cache_dir_for
    from reconcile.inputs.planpieces import plan_from_pieces

    leads, state = op.leads, op.state
    planned = plan_from_pieces(leads, state, cache_dir_for(state), op.max_file_bytes, context,
                               _rest_instance(session.environ), outputs.digests, key.state_found)
    if planned is None:
        return None
    plan, files_hash = planned
    rendered = _render(plan, op.format, op.color, _calls(plan, op.api), None, against_state=True, compact=op.compact)
    outputs.put(key, files_hash, state, plan.has_changes, rendered)
    return plan.has_changes, rendered


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
