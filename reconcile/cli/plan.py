"""`reconcile validate` and `reconcile plan`, and the cached plan text apply may show."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import OutputFormat, TextOrJson, env
from reconcile.cli.inputs import _check_fields, _load_inputs, _rest_instance
from reconcile.cli.refresh import _read_credentials, _refresh
from reconcile.cli.rendering import _calls, _render
from reconcile.cli.root import ApiOption, DebugOption, LeadsOption, MaxFileSizeOption, RefreshOption, StateOption, app
from reconcile.cli.transports import _rest_client
from reconcile.core.safetext import visible
from reconcile.errors import ExitStatus, UsageError

@app.command()
def validate(leads: LeadsOption = Path("leads"), max_file_size: MaxFileSizeOption = "256M",
             format: Annotated[TextOrJson, typer.Option(
                 "--format", help="text, or json: a JSON summary on stdout and each error as a JSON object "
                 "on its own line on stderr.")] = TextOrJson.text,
             debug: DebugOption = False) -> int:
    """Check the lead files against the schema and the key rules."""
    from reconcile.inputs.files import parse_size
    from reconcile.inputs.validate import load_desired, summary_line

    if format is TextOrJson.json:
        env().json_errors = True
    desired = load_desired(leads, max_file_bytes=parse_size(max_file_size))
    _check_fields(desired, Path("reconcile.state.json"))
    if format is TextOrJson.json:
        env().out(json.dumps({"valid": True, "leads": len(desired.leads), "files": len(desired.files)}))
    else:
        env().out(summary_line(desired))
    return ExitStatus.SUCCESS
REFRESH_CONCURRENCY = 4


@app.command("plan")
def plan_command(
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    out: Annotated[Optional[Path], typer.Option("--out", help="Save the plan for `apply PLAN_FILE`.")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                    help="Exit 2 when apply has something to do, 0 when not.")] = False,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    refresh: RefreshOption = False,
    compact: Annotated[bool, typer.Option("--compact", help="One line per action, for people and logs.")] = False,
    debug: DebugOption = False,
) -> int:
    """Show what apply would change in Marketo (with --refresh, against what Marketo holds now)."""
    from reconcile.core.gcpause import gc_paused
    from reconcile.remote.rest.config import select_api

    if format is OutputFormat.json:
        env().json_errors = True
    chosen = select_api(api, env().environ)
    if compact and format is not OutputFormat.text:
        raise UsageError(f"--compact is a text format; it does not combine with --format {format.value}")

    # Planning builds a few objects per lead and no reference cycles: the cyclic collector would
    # only walk them again and again. It resumes once they are gone, with _plan_and_render's frame.
    with gc_paused():
        return _plan_and_render(leads, state, out, format, detailed_exitcode, max_file_size, chosen, refresh,
                                compact)


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


def _plan_and_render(leads: Path, state: Path, out: Optional[Path], format: OutputFormat,
                     detailed_exitcode: bool, max_file_size: str, api: str = "soap", refresh: bool = False,
                     compact: bool = False) -> int:
    from reconcile.store import planfile
    from reconcile.core.declared_once import check_declared_once
    from reconcile.core.planner import plan as make_plan
    from reconcile.store.journal import journal_path

    if out is not None:
        if refresh:
            raise UsageError("--refresh and --out cannot be combined: a saved plan is applied against the state "
                             "it was made from; run `reconcile apply --refresh` instead")
        planfile.check_destination(out)
    # A plan to print (not to save), made without reading Marketo and with no journal to replay, is a
    # function of its inputs' bytes alone: the lead files, the state, the describe cache and the options.
    reusable = out is None and not refresh and not journal_path(state).exists()
    if reusable:
        from reconcile.inputs.cache import cache_dir_for
        from reconcile.inputs.files import parse_size
        from reconcile.inputs.plancache import PlanOutputCache

        outputs = PlanOutputCache(cache_dir_for(state))
        context = _plan_context(api, state)
        key = outputs.key(leads, state, parse_size(max_file_size), _plan_output_options(format, compact, context))
        cached = outputs.get(key)
        if cached is None and outputs.wants(key):
            cached = _plan_from_pieces(leads, state, max_file_size, context, outputs, key, format, api, compact)
        if cached is not None:
            has_changes, rendered = cached
            if isinstance(rendered, bytes):  # from the cache, as stored
                env().out_encoded(rendered)
            else:
                env().out(rendered)
            return ExitStatus.CHANGES_PRESENT if detailed_exitcode and has_changes else ExitStatus.SUCCESS
    desired, current = _load_inputs(leads, state, max_file_size)
    current, recovery, state_hash = _preview_recovery(state, current)
    check_declared_once(desired.leads, current)
    drift = None
    if refresh:
        with contextlib.closing(_rest_client(_read_credentials(api), REFRESH_CONCURRENCY)) as client:
            drift = _refresh(current, state, client, REFRESH_CONCURRENCY)
        current = drift.refreshed
        check_declared_once(desired.leads, current)  # Marketo's answers may make two declarations one lead
    plan = make_plan(desired.leads, current)
    if out is not None:
        planfile.save(out, plan, desired=desired, state=current, state_path=state, leads_dir=leads,
                      state_hash=state_hash)
    rendered = _with_recovery(_render(plan, format, _calls(plan, api), drift, against_state=not refresh,
                                      compact=compact), recovery, format)
    if reusable and not recovery:
        outputs.put(key, desired.files_hash, state, plan.has_changes, rendered)
    env().out(rendered)
    if reusable and not recovery and outputs.wants(key) and outputs.still(key, desired.files_hash, state):
        from reconcile.inputs.planpieces import store_pieces

        store_pieces(cache_dir_for(state), key.state_found, context, desired, current, plan)
    if out is not None and format is OutputFormat.text:
        env().out(f"Saved the plan to {visible(out)}; apply it exactly with: reconcile apply {visible(out)}")
    if detailed_exitcode and (plan.has_changes or (drift is not None and drift.has_drift)):
        return ExitStatus.CHANGES_PRESENT
    return ExitStatus.SUCCESS


def _plan_context(api: str, state: Path) -> str:
    """What a plan reads besides the lead files and the state."""
    return f"api={api} fields={_rest_instance()}:{_describe_cache_stamp(state)}"


def _plan_output_options(format: OutputFormat, compact: bool, context: str) -> str:
    return f"{format.value} color={env().color} compact={compact} {context}"


def _planned_text(r, desired) -> bytes | None:
    """The text `reconcile plan` printed for exactly these lead files (as apply read them) and this
    state, UTF-8 encoded, if it is in the plan cache: apply shows the same actions, so it need not
    render them again."""
    from reconcile.inputs.cache import cache_dir_for
    from reconcile.inputs.plancache import PlanOutputCache
    from reconcile.store.journal import journal_path

    if journal_path(r.state).exists():  # plan does not cache what it shows over an unfinished apply
        return None
    outputs = PlanOutputCache(cache_dir_for(r.state))
    key = outputs.key(r.leads, r.state, r.max_file_bytes,
                      _plan_output_options(OutputFormat.text, False, _plan_context(r.api, r.state)))
    if key is None or key.files_hash != desired.files_hash:
        return None
    cached = outputs.get(key)
    return cached[1] if cached is not None else None


def _show_plan_for_apply(r, plan, desired, calls, drift) -> None:
    """The plan as apply shows it: from plan's cached text of the same inputs when there is one."""
    from reconcile.core.render import text_for_apply

    if drift is None and r.saved is None:
        planned = _planned_text(r, desired)
        text = text_for_apply(planned, plan, env().color, calls) if planned is not None else None
        if text is not None:
            env().out_encoded(text)
            return
    env().out(_render(plan, OutputFormat.text, calls, drift))


def _plan_from_pieces(leads: Path, state: Path, max_file_size: str, context: str, outputs, key,
                      format: OutputFormat, api: str, compact: bool) -> tuple[bool, str] | None:
    """A plan assembled from the cached pieces of unchanged lead files and the changed files planned
    alone, rendered and cached; None when it must be planned from scratch."""
    from reconcile.inputs.cache import cache_dir_for
    from reconcile.inputs.files import parse_size
    from reconcile.inputs.planpieces import plan_from_pieces

    planned = plan_from_pieces(leads, state, cache_dir_for(state), parse_size(max_file_size), context,
                               _rest_instance(), outputs.digests, key.state_found)
    if planned is None:
        return None
    plan, files_hash = planned
    rendered = _render(plan, format, _calls(plan, api), None, against_state=True, compact=compact)
    outputs.put(key, files_hash, state, plan.has_changes, rendered)
    return plan.has_changes, rendered


def _preview_recovery(state_path: Path, current):
    """The state as apply will see it: a leftover journal replayed, read-only. Returns that state,
    lines saying what the replay changes, and the hash the state file will have once apply has made
    the replay durable (None when it stays as it is)."""
    from reconcile.store.journal import journal_path

    if not journal_path(state_path).exists():
        return current, [], None
    from reconcile import apply as applier  # a tenth of a second of imports: only when there is a journal
    from reconcile.store.state import content_hash_of

    recovered, report = applier.recover(state_path, commit=False)
    lines = applier.recovery_lines(current, recovered, report)
    state_hash = content_hash_of(recovered) if report.activity and report.changed else None
    return recovered, lines, state_hash


def _with_recovery(rendered: str, lines: list[str], fmt: OutputFormat) -> str:
    if not lines:
        return rendered
    if fmt is OutputFormat.json:
        for line in lines:
            env().err(f"warning: {line}")
        return rendered
    if fmt is OutputFormat.markdown:
        from reconcile.core.render import fence_for

        body = "\n".join(lines)
        fence = fence_for(body)
        return f"**Apply first recovers an interrupted apply's journal:**\n\n{fence}text\n{body}\n{fence}\n\n" + rendered
    return "\n".join(lines) + "\n\n" + rendered
