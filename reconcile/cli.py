"""The command line. The only module that prints or decides the process's exit status."""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional, TextIO

import typer

from reconcile import __version__
from reconcile.core.safetext import encoded_text_unchanged, json_text, not_a_command, safe_block, visible
from reconcile.errors import ExitStatus, Interrupted, ReconcileError, UsageError

try:  # typer >= 0.29 vendors click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    from click import exceptions as _click_exceptions


@dataclass
class Environment:
    """Everything the CLI reads from or writes to the outside world, injectable for tests."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    stdout_isatty: bool | None = None
    stdin_isatty: bool | None = None
    stderr_isatty: bool | None = None
    debug: bool = False
    json_errors: bool = False  # errors and warnings as one JSON object per line (--error-format json)

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)

    @property
    def color(self) -> bool:
        return bool(self.stdout_isatty) and "NO_COLOR" not in self.environ and self.environ.get("TERM") != "dumb"

    def out(self, text: str = "") -> None:
        """Text assembled by reconcile (values in it already escaped): no line of it can be a command."""
        text = safe_block(text, keep_ansi=self.color)
        self.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        self.stdout.flush()

    def out_encoded(self, data: bytes) -> None:
        """`out` for text reconcile assembled and stored UTF-8 encoded (a cached plan): written as it is
        when nothing in it needs escaping and stdout would write the same bytes (UTF-8 or ASCII, "\n"
        line ends), so that 40 MB are neither decoded nor encoded again."""
        if not self._writes_bytes_as_they_are() or not encoded_text_unchanged(data, keep_ansi=self.color):
            self.out(data.decode("utf-8", "backslashreplace"))
            return
        buffer = self.stdout.buffer  # type: ignore[attr-defined]
        self.stdout.flush()
        buffer.write(data if data.endswith(b"\n") or not data else data + b"\n")
        buffer.flush()

    def _writes_bytes_as_they_are(self) -> bool:
        if getattr(self.stdout, "buffer", None) is None or os.linesep != "\n":
            return False
        try:
            return codecs.lookup(getattr(self.stdout, "encoding", None) or "").name in ("utf-8", "ascii")
        except LookupError:
            return False

    def err(self, text: str) -> None:
        """One line on stderr, whatever the text holds."""
        self.stderr.write(not_a_command(visible(text)) + "\n")
        self.stderr.flush()

    def debug_log(self, text: str) -> None:
        """A multi-line debug record (an HTTP exchange): each line prefixed, each shown safely."""
        for line in text.split("\n"):
            self.err(f"debug: {line}")

    def err_block(self, text: str) -> None:
        self.stderr.write(safe_block(text) + "\n")
        self.stderr.flush()

    def warn(self, text: str) -> None:
        if self.json_errors:
            self.err(json.dumps({"severity": "warning", "file": None, "line": None, "path": None,
                                 "message": text, "exit_code": None}))
        else:
            self.err(f"warning: {text}")

    def error(self, exc: ReconcileError) -> None:
        if self.json_errors:
            for diagnostic in exc.diagnostics():
                self.err(json.dumps(diagnostic))
        else:
            for line in exc.lines():
                self.err(f"error: {line}")

    def workflow_command(self, line: str) -> None:
        """A GitHub Actions workflow command that reconcile means (its data escaped by the caller)."""
        self.stdout.write(line + "\n")
        self.stdout.flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_current_env: contextvars.ContextVar[Environment] = contextvars.ContextVar("reconcile_env")


def env() -> Environment:
    return _current_env.get()


class TextOrJson(str, Enum):
    text = "text"
    json = "json"


class OutputFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


app = typer.Typer(name="reconcile", add_completion=False, no_args_is_help=True,
                  help="Terraform for Marketo leads: YAML lead files in git → plan → apply through REST Sync Leads "
                       "(or SOAP syncMultipleLeads).")
state_app = typer.Typer(help="Inspect and edit the state file.", no_args_is_help=True)
app.add_typer(state_app, name="state")

LeadsOption = Annotated[Path, typer.Option("--leads", help="Directory of lead files (*.yaml, *.yml).")]
StateOption = Annotated[Path, typer.Option("--state", help="State file.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks and a redacted HTTP log.")]
MaxFileSizeOption = Annotated[str, typer.Option(
    "--max-file-size", metavar="SIZE", help="Refuse a lead file larger than this (e.g. 256M, 1G, or bytes).")]


def _show_version(value: bool) -> None:
    if value:
        env().out(f"reconcile {__version__}")
        raise typer.Exit(ExitStatus.SUCCESS)


ForeignIdFieldOption = Annotated[Optional[str], typer.Option(
    "--foreign-id-field", help="REST: the custom lead field that carries foreignSysPersonId "
    "(env RECONCILE_FOREIGN_ID_FIELD).", show_default=False)]
ApiOption = Annotated[Optional[str], typer.Option(
    "--api", help="Marketo API: soap or rest (env RECONCILE_API; default: the credentials set).",
    show_default=False)]


@app.callback()
def _root(debug: DebugOption = False,
          error_format: Annotated[TextOrJson, typer.Option(
              "--error-format", help="Errors and warnings on stderr as text, or as one JSON object per line "
              "(file, line, path, message, exit_code).")] = TextOrJson.text,
          version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                                help="Show the version and exit.")] = False) -> None:
    """Options accepted anywhere on the command line (--debug, --error-format) are read by `run`."""


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
    _warn_skipped(leads)
    desired = load_desired(leads, max_file_bytes=parse_size(max_file_size))
    _check_fields(desired, Path("reconcile.state.json"))
    if format is TextOrJson.json:
        env().out(json.dumps({"valid": True, "leads": len(desired.leads), "files": len(desired.files)}))
    else:
        env().out(summary_line(desired))
    return ExitStatus.SUCCESS


def _warn_skipped(leads: Path) -> None:
    """Name the files in the lead directory that look like lead files but are not read."""
    from reconcile.inputs.files import skipped_files

    skipped = skipped_files(leads)
    if skipped:
        env().warn(f"not read: {', '.join(skipped)} (lead files end in .yaml or .yml, in lower case)")


def _warn_other_instance(state: Path, api: str) -> None:
    """`plan` makes no call, but says when the endpoint set is not the instance the state belongs to."""
    from reconcile.store.state import other_instance_warning

    variable = "MARKETO_REST_ENDPOINT" if api == "rest" else "MARKETO_SOAP_ENDPOINT"
    warning = other_instance_warning(state, env().environ.get(variable) or "", variable)
    if warning:
        env().warn(warning)


def _load_inputs(leads: Path, state_path: Path, max_file_size: str):
    from reconcile.inputs.cache import cache_dir_for, load_state
    from reconcile.inputs.files import parse_size
    from reconcile.inputs.validate import load_desired

    cache_dir = cache_dir_for(state_path)
    # The state is read first: the memory its parse leaves free is taken by the leads (a million
    # leads peak half a gigabyte lower). Its errors still come after the lead files'.
    try:
        state, state_error = load_state(state_path, cache_dir), None
    except ReconcileError as exc:
        state, state_error = None, exc
    desired = load_desired(leads, cache_dir=cache_dir, max_file_bytes=parse_size(max_file_size))
    _check_fields(desired, state_path)
    if state_error is not None:
        raise state_error
    return desired, state


def _check_fields(desired, state_path: Path, catalog=None) -> None:
    """With the instance's fields cached (`reconcile fields`), refuse attributes it cannot take."""
    from reconcile.inputs.fields import check_desired, load_catalog

    if catalog is None:
        catalog = load_catalog(state_path, _rest_instance())
    if catalog is not None:
        check_desired(desired.leads, desired.files_hash, catalog, state_path)


def _rest_instance() -> str | None:
    from reconcile.remote.rest.config import ENV_REST_ENDPOINT, instance_host

    return instance_host((env().environ.get(ENV_REST_ENDPOINT) or "").strip())


def _render(plan, fmt: OutputFormat, calls=None, drift=None, against_state: bool = False,
            compact: bool = False, full: bool = False) -> str:
    from reconcile.core import render

    calls = calls or render.Calls()
    if compact:
        return render.render_compact(plan, calls, drift, against_state)
    if fmt is OutputFormat.json:
        return render.render_json(plan, calls, drift)
    if fmt is OutputFormat.markdown:
        return render.render_markdown(plan, calls, drift, against_state)
    return render.render_text(plan, color=env().color, calls=calls, drift=drift, against_state=against_state,
                              full=full)


def _calls(plan, api: str, dedup_enabled: bool = True, foreign_id_field: str | None = None):
    """The API's call name and how many calls apply makes: REST calls never mix lookup keys."""
    from reconcile.core import render

    if api != "rest":
        return render.Calls()
    from reconcile.apply import plan_batches
    from reconcile.remote.rest.payload import group_of, names_as_written, size_bound_as_written, size_of
    from reconcile.remote.rest.transport import RestTransport

    field = foreign_id_field or "foreign-id-field"  # any name: only which records share a call matters
    names = names_as_written(field)  # calls are cut by size as apply cuts them
    batches = plan_batches(plan, plan.batch_size, dedup_enabled,
                           group_of=lambda record, dedup: group_of(record, dedup, field),
                           size_of=lambda record: size_of(record, names), max_call_bytes=RestTransport.max_call_bytes,
                           size_bound_of=lambda record: size_bound_as_written(record, names))
    return render.Calls("Sync Leads", len(batches))


RefreshOption = Annotated[bool, typer.Option(
    "--refresh", help="First read the managed fields of every state lead from Marketo (REST Get Leads, "
    "300 leads per call) and plan against what Marketo holds now.")]
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
    full: Annotated[bool, typer.Option("--full", help="Show every action of a large plan (above 1,000 actions the "
                                       "text plan shows the counts per file and a sample).")] = False,
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
    _warn_skipped(leads)
    _warn_other_instance(state, chosen)

    # Planning builds a few objects per lead and no reference cycles: the cyclic collector would
    # only walk them again and again. It resumes once they are gone, with _plan_and_render's frame.
    with gc_paused():
        return _plan_and_render(leads, state, out, format, detailed_exitcode, max_file_size, chosen, refresh,
                                compact, full)


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
                     compact: bool = False, full: bool = False) -> int:
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
        key = outputs.key(leads, state, parse_size(max_file_size),
                          _plan_output_options(format, compact, context, full))
        cached = outputs.get(key)
        if cached is None and outputs.wants(key):
            cached = _plan_from_pieces(leads, state, max_file_size, context, outputs, key, format, api, compact,
                                       full)
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
                                      compact=compact, full=full), recovery, format)
    rendered = _with_foreign_id_note(rendered, plan, api, state, format)
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
    from reconcile.remote.rest.config import foreign_id_field

    return (f"api={api} fields={_rest_instance()}:{_describe_cache_stamp(state)} "
            f"foreign-id-field={foreign_id_field(None, env().environ)!r}")


def _with_foreign_id_note(rendered: str, plan, api: str, state: Path, format: OutputFormat) -> str:
    """A REST plan with foreign-ID leads says, under the plan, when apply would refuse them and how to
    name the field that carries their IDs."""
    from reconcile.apply.foreignid import foreign_id_leads, missing_field_note
    from reconcile.inputs.fields import load_catalog
    from reconcile.remote.rest.config import REST, foreign_id_field

    if api != REST or format is OutputFormat.json:
        return rendered
    field, problem = foreign_id_field(None, env().environ), None
    catalog = load_catalog(state, _rest_instance()) if field is not None else None
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


def _plan_output_options(format: OutputFormat, compact: bool, context: str, full: bool = False) -> str:
    return f"{format.value} color={env().color} compact={compact} full={full} {context}"


def _planned_text(r: "_ApplyRequest", desired) -> bytes | None:
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


def _show_plan_for_apply(r: "_ApplyRequest", plan, desired, calls, drift) -> None:
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
                      format: OutputFormat, api: str, compact: bool, full: bool = False) -> tuple[bool, str] | None:
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
    rendered = _with_foreign_id_note(_render(plan, format, _calls(plan, api), None, against_state=True,
                                             compact=compact, full=full), plan, api, state, format)
    outputs.put(key, files_hash, state, plan.has_changes, rendered)
    return plan.has_changes, rendered


def _read_credentials(api: str, credentials=None):
    """The REST credentials refresh reads with: the apply's own when it writes through REST, else the
    environment's. No live Marketo answers SOAP reads any more, so SOAP alone cannot refresh."""
    from reconcile.remote.rest.config import REST, REST_VARIABLES, RestCredentials

    if credentials is not None and isinstance(credentials, RestCredentials):
        return credentials
    environ = env().environ
    if api != REST and not any((environ.get(name) or "").strip() for name in REST_VARIABLES):
        raise UsageError("--refresh reads leads through Marketo's REST API (Get Leads); with --api soap it needs "
                         f"the REST credentials too ({', '.join(REST_VARIABLES)}): Marketo retired SOAP, and no "
                         "live instance answers SOAP reads")
    return RestCredentials.from_env(environ)


def _refresh(current, state_path: Path, client, concurrency: int):
    """Marketo's current values of the state's leads (after checking the state belongs to its instance)."""
    from reconcile.apply.refresh import NUMERIC_TYPES, refresh, refresh_calls
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance

    current = check_instance(current, instance_of(client.credentials.base_url), state_path)
    calls = refresh_calls(current)
    catalog = _rest_catalog(client, state_path)
    with_id = sum(1 for record in current.leads.values() if record.lead_id is not None)
    env().err(f"Refreshing {with_id} lead{'' if with_id == 1 else 's'} from Marketo: {calls} Get Leads "
              f"call{'' if calls == 1 else 's'}.")

    def progress(event) -> None:
        if event.calls > 1:
            env().err(f"read {event.calls_done}/{event.calls}: {event.leads_read} leads")

    numeric = frozenset(name for name, spec in catalog.fields.items() if (spec.data_type or "") in NUMERIC_TYPES)
    return refresh(current, client, catalog.rest_names(), numeric=numeric, concurrency=concurrency,
                   on_progress=progress)


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


@state_app.command("list")
def state_list(state: StateOption = Path("reconcile.state.json"),
               as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
               debug: DebugOption = False) -> int:
    """List the leads recorded in the state."""
    from reconcile.store.state import lead_to_json, load_state

    current = load_state(state)
    if as_json:
        env().out(json_text(json.dumps({key: lead_to_json(current.leads[key]) for key in sorted(current.leads)},
                                       indent=2, ensure_ascii=False, sort_keys=True)))
        return ExitStatus.SUCCESS
    for key in sorted(current.leads):
        lead_id = current.leads[key].lead_id
        env().out(f"{visible(key)}\t{lead_id if lead_id is not None else '-'}")
    return ExitStatus.SUCCESS


@state_app.command("show")
def state_show(key: Annotated[str, typer.Argument(help="A state key, e.g. email:jane@example.com or id:1090240.")],
               state: StateOption = Path("reconcile.state.json"), debug: DebugOption = False) -> int:
    """Show one lead recorded in the state."""
    from reconcile.store.state import lead_to_json, load_state

    current = load_state(state)
    record = current.leads.get(key) or current.leads.get(_normalise_key(key))
    if record is None:
        raise UsageError(f"no lead {key!r} in {state} (see `reconcile state list`)")
    env().out(json_text(json.dumps(lead_to_json(record), indent=2, ensure_ascii=False, sort_keys=True)))
    return ExitStatus.SUCCESS


def _normalise_key(key: str) -> str:
    return "email:" + key[len("email:"):].lower() if key.startswith("email:") else key


# --- `reconcile ci ...`: the steps of action.yml (hidden; see reconcile/ci) ---

ci_app = typer.Typer(help="GitHub Actions steps (used by action.yml).", no_args_is_help=True)
app.add_typer(ci_app, name="ci", hidden=True)


def _read_text(path: Optional[Path]) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _exitcode(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


@ci_app.command("annotate")
def ci_annotate(workspace: Annotated[Optional[str], typer.Option(
        "--workspace", help="Repository root for relative paths (default: $GITHUB_WORKSPACE).")] = None) -> int:
    """Copy stdin to stdout, turning reconcile's JSON diagnostics into ::error/::warning annotations."""
    from reconcile.ci.annotations import Annotation, annotate

    root = workspace or env().environ.get("GITHUB_WORKSPACE")
    for item in annotate(env().stdin, root, os.getcwd()):
        if isinstance(item, Annotation):
            env().workflow_command(item.command())
        else:
            env().out(item + "\n")
    return ExitStatus.SUCCESS


@ci_app.command("check-tracked")
def ci_check_tracked(state: StateOption = Path("reconcile.state.json")) -> int:
    """Fail when git tracks a journal or lock file: apply must do exactly what the reviewed plan showed."""
    from reconcile.ci.commit import refuse_tracked_runtime_files

    refuse_tracked_runtime_files(str(state), env().environ)
    env().out("No apply journal or state lock is committed.")
    return ExitStatus.SUCCESS


@ci_app.command("comment-body")
def ci_comment_body(
    plan: Annotated[Optional[Path], typer.Option("--plan", help="The plan's Markdown.")] = None,
    exitcode: Annotated[str, typer.Option("--exitcode", help="plan's exit status (empty: it did not run).")] = "",
    log: Annotated[Optional[list[Path]], typer.Option("--log", help="Output with JSON diagnostics (repeatable).")]
    = None,
    artifact_url: Annotated[str, typer.Option("--artifact-url")] = "",
    artifact_name: Annotated[str, typer.Option("--artifact-name")] = "reconcile-plan",
    run_url: Annotated[str, typer.Option("--run-url")] = "",
    sha: Annotated[str, typer.Option("--sha")] = "",
    summary: Annotated[bool, typer.Option("--summary", help="For the job summary: no marker, 1 MB limit.")]
    = False,
    max_chars: Annotated[int, typer.Option("--max-chars", min=0)] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", help="Write here instead of stdout.")] = None,
) -> int:
    """The Markdown of the sticky plan comment, or of the plan job's summary."""
    from reconcile.ci import context
    from reconcile.ci.annotations import diagnostics_in
    from reconcile.ci.comment import CommentContext, comment_body

    environ = env().environ
    where = CommentContext(artifact_url=artifact_url or None, artifact_name=artifact_name,
                           run_url=run_url or context.run_url(environ), sha=sha or context.head_sha(environ))
    body = comment_body(plan_markdown=_read_text(plan), exitcode=_exitcode(exitcode),
                        diagnostics=[d for path in log or () for d in diagnostics_in(_read_text(path) or "")],
                        context=where, for_comment=not summary, limit=max_chars or None)
    if output is not None:
        output.write_text(body, encoding="utf-8")
    else:
        env().out(body)
    return ExitStatus.SUCCESS


@ci_app.command("sticky-comment")
def ci_sticky_comment(
    body_file: Annotated[Path, typer.Option("--body-file")],
    repo: Annotated[Optional[str], typer.Option("--repo", help="owner/name (default: $GITHUB_REPOSITORY).")]
    = None,
    pr: Annotated[Optional[int], typer.Option("--pr", help="Pull request (default: from the event).")] = None,
    gh: Annotated[str, typer.Option("--gh", help="The GitHub CLI executable.")] = "gh",
) -> int:
    """Create or update (never duplicate, never someone else's) the plan comment on the pull request."""
    from reconcile.ci import context
    from reconcile.ci.comment import GitHubCLI, upsert_comment

    environ = env().environ
    repo = repo or environ.get("GITHUB_REPOSITORY")
    number = pr or context.pull_request_number(environ)
    if not repo or not number:
        raise UsageError("sticky-comment needs a repository and a pull request number "
                         "(GITHUB_REPOSITORY and a pull_request event, or --repo and --pr)")
    client = GitHubCLI(executable=gh, environ=environ, tmpdir=environ.get("RUNNER_TEMP"))
    action, comment = upsert_comment(client, repo, number, body_file.read_text(encoding="utf-8"))
    url = str(comment.get("html_url") or "")
    env().out(f"{action.capitalize()} the plan comment on pull request #{number}" + (f": {visible(url)}" if url
                                                                                     else "."))
    context.append_to(environ.get("GITHUB_OUTPUT"), context.output_text(
        {"comment-action": action, "comment-id": str(comment.get("id", "")), "comment-url": url}))
    return ExitStatus.SUCCESS


@ci_app.command("drift-issue")
def ci_drift_issue(
    exitcode: Annotated[str, typer.Option("--exitcode", help="plan --refresh --detailed-exitcode's exit status.")],
    report: Annotated[Path, typer.Option("--report", help="The refreshed plan's Markdown.")],
    repo: Annotated[Optional[str], typer.Option("--repo", help="owner/name (default: $GITHUB_REPOSITORY).")]
    = None,
    gh: Annotated[str, typer.Option("--gh", help="The GitHub CLI executable.")] = "gh",
) -> int:
    """Open or update the one `reconcile-drift` issue on drift; close it when the drift is gone."""
    from reconcile.ci import context
    from reconcile.ci.comment import GitHubCLI
    from reconcile.ci.drift_issue import sync_issue

    environ = env().environ
    repo = repo or environ.get("GITHUB_REPOSITORY")
    status = _exitcode(exitcode)
    if not repo:
        raise UsageError("drift-issue needs a repository (GITHUB_REPOSITORY or --repo)")
    if status not in (ExitStatus.SUCCESS, ExitStatus.CHANGES_PRESENT):
        raise UsageError(f"drift-issue follows a plan that ran (exit 0 or 2), not exit {exitcode!r}")
    client = GitHubCLI(executable=gh, environ=environ, tmpdir=environ.get("RUNNER_TEMP"))
    action, issue = sync_issue(client, repo, status, _read_text(report) or "", context.run_url(environ))
    url = str((issue or {}).get("html_url") or "")
    env().out(("No drift, and no open drift issue." if action == "none"
               else f"{action.capitalize()} the drift issue #{(issue or {}).get('number', '?')}")
              + (f": {visible(url)}" if url and action != "none" else ""))
    context.append_to(environ.get("GITHUB_OUTPUT"), context.output_text({"issue-action": action, "issue-url": url}))
    return ExitStatus.SUCCESS


@ci_app.command("summarize-apply")
def ci_summarize_apply(
    exitcode: Annotated[str, typer.Option("--exitcode", help="apply's exit status (empty: it did not run).")] = "",
    log: Annotated[Optional[Path], typer.Option("--log", help="apply's output (with --error-format json).")]
    = None,
    state: StateOption = Path("reconcile.state.json"),
    before: Annotated[Optional[Path], typer.Option("--before", help="The state before apply "
                                                   "(default: the committed version).")] = None,
    artifact_name: Annotated[str, typer.Option("--artifact-name")] = "",
    collect: Annotated[Optional[Path], typer.Option("--collect", help="Copy the state, the journal and the log "
                                                    "into this folder.")] = None,
) -> int:
    """Apply's exit status and output → the job summary (stdout when there is no GITHUB_STEP_SUMMARY)."""
    from reconcile.ci import context
    from reconcile.ci.annotations import diagnostics_in
    from reconcile.ci.commit import state_text
    from reconcile.ci.summary import ApplyOutcome, apply_summary, collect_evidence, complete_line
    from reconcile.store.journal import journal_path

    environ = env().environ
    journal = journal_path(state)
    log_text = _read_text(log) or ""
    evidence = (collect_evidence([str(state), str(journal), str(log) if log else None], str(collect))
                if collect is not None else [])
    text = apply_summary(ApplyOutcome(
        exitcode=_exitcode(exitcode), complete_line=complete_line(log_text), diagnostics=diagnostics_in(log_text),
        state_before=_read_text(before) if before is not None else state_text(str(state), environ, committed=True),
        state_after=state_text(str(state), environ), journal_present=journal.exists(), evidence=evidence,
        artifact_name=artifact_name or None, run_url=context.run_url(environ)))
    if environ.get("GITHUB_STEP_SUMMARY"):
        context.append_to(environ["GITHUB_STEP_SUMMARY"], text)
    else:
        env().out(text)
    return ExitStatus.SUCCESS


@ci_app.command("commit-state")
def ci_commit_state(
    state: StateOption = Path("reconcile.state.json"),
    branch: Annotated[Optional[str], typer.Option("--branch", help="Default: $GITHUB_REF_NAME.")] = None,
    remote: Annotated[str, typer.Option("--remote")] = "origin",
    attempts: Annotated[int, typer.Option("--attempts", min=1)] = 4,
    log: Annotated[Optional[Path], typer.Option("--log", help="apply's output, for the commit message.")] = None,
) -> int:
    """Commit the state file and push it, rebasing over a concurrent push."""
    from reconcile.ci import context
    from reconcile.ci.commit import CommitError, commit_message, commit_state
    from reconcile.ci.summary import complete_line

    environ = env().environ
    branch = branch or environ.get("GITHUB_REF_NAME") or "main"
    message = commit_message(sha=environ.get("GITHUB_SHA"), summary_line=complete_line(_read_text(log) or ""),
                             run_url=context.run_url(environ), state=str(state))
    try:
        sha = commit_state(str(state), branch=branch, message=message, remote=remote, attempts=attempts,
                           environ=environ, log=lambda text: env().out(visible(text)))
    except CommitError as exc:
        context.append_to(environ.get("GITHUB_STEP_SUMMARY"), f"\n**The state was not committed:** {exc}.\n")
        context.append_to(environ.get("GITHUB_OUTPUT"), context.output_text({"committed": "false"}))
        raise
    context.append_to(environ.get("GITHUB_OUTPUT"),
                      context.output_text({"committed": "true" if sha else "false", "commit": sha or ""}))
    if sha:
        context.append_to(environ.get("GITHUB_STEP_SUMMARY"),
                          f"\nCommitted the updated `{state}` to `{branch}` as `{sha[:12]}`.\n")
    return ExitStatus.SUCCESS


# --- commands that talk to Marketo: apply, emulator, force-unlock, state rm ---


@app.command()
def apply(
    plan_file: Annotated[Optional[Path], typer.Argument(help="A plan saved by `plan --out`: apply exactly it.",
                                                        show_default=False)] = None,
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")] = False,
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Apply to the built-in Marketo emulator (database under .reconcile/).")] = False,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", help="SOAP endpoint URL (overrides MARKETO_SOAP_ENDPOINT).", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per call (1..300).")] = 300,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Calls in flight at once (1..10).")] = 4,
    no_dedup: Annotated[bool, typer.Option("--no-dedup", help="Send dedupEnabled=false: Marketo creates a new "
                                           "lead even when one with the email exists.")] = False,
    forget_orphans: Annotated[bool, typer.Option("--forget-orphans", help="Drop leads no longer declared "
                                                 "from the state (Marketo keeps them).")] = False,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    foreign_id_field: ForeignIdFieldOption = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="First read Marketo (as plan --refresh does): values changed in Marketo are "
        "restored to the declared ones.")] = False,
    refresh_only: Annotated[bool, typer.Option(
        "--refresh-only", help="Only record Marketo's current values of the managed fields in the state; "
        "nothing is sent to Marketo.")] = False,
    debug: DebugOption = False,
) -> int:
    """Apply the plan: send Sync Leads (REST) or syncMultipleLeads (SOAP) calls and record the lead IDs.

    Credentials come only from the environment. REST: MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET,
    MARKETO_REST_ENDPOINT (optional MARKETO_IDENTITY_ENDPOINT). SOAP: MARKETO_SOAP_ENDPOINT,
    MARKETO_USER_ID, MARKETO_ENCRYPTION_KEY. Without --api (or RECONCILE_API), the set present decides.
    """
    from reconcile import apply as applier
    from reconcile.inputs.files import parse_size
    from reconcile.store import lock, planfile
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance, check_state_path, finish_interrupted_write

    max_file_bytes = parse_size(max_file_size)
    options = applier.ApplyOptions(batch_size=batch_size, concurrency=concurrency, dedup_enabled=not no_dedup,
                                   forget_orphans=forget_orphans)
    _check_refresh_options(refresh, refresh_only, plan_file)
    saved = planfile.load(plan_file) if plan_file is not None else None
    if saved is not None:
        leads, state = Path(saved.leads_dir), Path(saved.state_path)
    if use_emulator and endpoint:
        raise UsageError("--emulator and --endpoint are mutually exclusive")
    check_state_path(state)
    chosen, foreign_id_field = _api_for_apply(api, endpoint, use_emulator, foreign_id_field)
    with contextlib.ExitStack() as stack:
        credentials = (stack.enter_context(_embedded_emulator(state, chosen)) if use_emulator
                       else _credentials_from_env(endpoint, chosen))
        held = lock.acquire(state, "apply", on_warning=lambda text: env().warn(text))
        stack.callback(held.release)
        stack.callback(_notice_if_migrated(state))
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        current = check_instance(current, instance_of(credentials.endpoint), state)
        return _plan_and_send(stack, _ApplyRequest(
            leads=leads, state=state, saved=saved, options=options, api=chosen, foreign_id_field=foreign_id_field,
            refresh=refresh, refresh_only=refresh_only, auto_approve=auto_approve, max_file_bytes=max_file_bytes,
            use_emulator=use_emulator), credentials, current)


@dataclass(frozen=True)
class _ApplyRequest:
    """What the apply command was asked to do, once its options are checked."""

    leads: Path
    state: Path
    saved: Any
    options: Any
    api: str
    foreign_id_field: str | None
    refresh: bool
    refresh_only: bool
    auto_approve: bool
    max_file_bytes: int
    use_emulator: bool


def _plan_and_send(stack, r: _ApplyRequest, credentials, current) -> int:
    """Apply under the lock: refresh if asked, plan, show, confirm, send, report."""
    from reconcile.apply import PlannedCalls
    from reconcile.core import render
    from reconcile.core.declared_once import check_declared_once
    from reconcile.core.planner import plan as make_plan
    from reconcile.inputs.cache import cache_dir_for
    from reconcile.inputs.validate import load_desired
    from reconcile.remote.rest.config import REST
    from reconcile.store import planfile

    drift, reader = (_refresh_for_apply(stack, r.api, credentials, current, r.state, r.options, r.use_emulator)
                     if r.refresh or r.refresh_only else (None, None))
    if r.refresh_only:
        return _record_refresh(drift, current, r.state, r.auto_approve, credentials.endpoint)
    _warn_skipped(r.leads)
    # The files' parses are shared with plan's: an apply after a plan of the same files parses none.
    desired = load_desired(r.leads, cache_dir=cache_dir_for(r.state), max_file_bytes=r.max_file_bytes)
    if r.saved is not None:
        planfile.check_fresh(r.saved, desired=desired, state=current, state_path=r.state)
    check_declared_once(desired.leads, current if drift is None else drift.refreshed)
    plan = make_plan(desired.leads, current if drift is None else drift.refreshed, batch_size=r.options.batch_size)
    has_work = plan.has_changes or (r.options.forget_orphans and plan.summary["orphaned"])
    if not has_work:
        env().out(_render(plan, OutputFormat.text, _calls(plan, r.api, r.options.dedup_enabled,
                                                          r.foreign_id_field), drift, against_state=drift is None))
        return _nothing_to_apply(drift, current, r.state, r.auto_approve, credentials.endpoint)
    if r.api == REST:
        transport = _rest_transport(credentials, desired, plan, r.state, r.options, r.foreign_id_field, reader)
    else:  # SOAP writes: one rate window with the refresh's reads, as in Marketo
        transport = _make_transport(credentials, r.options.concurrency,
                                    reader.http.rate_limiter if reader is not None else None)
    stack.callback(transport.close)
    calls = PlannedCalls.of(plan, transport, r.options)
    calls.start_building(transport)  # envelopes are built while the plan is printed and confirmed
    shown = render.Calls("Sync Leads", len(calls.batches)) if r.api == REST else render.Calls()
    _show_plan_for_apply(r, plan, desired, shown, drift)
    if r.saved is None and not r.auto_approve:
        _confirm(credentials.endpoint)
    if drift is not None and drift.has_drift:
        current = _write_refreshed(drift, current, r.state)
    report = _run_apply(plan, current, r.state, transport, r.options, calls)
    env().out(report.summary("complete"))
    return ExitStatus.SUCCESS


def _api_for_apply(api: str | None, endpoint: str | None, use_emulator: bool,
                   foreign_id_field: str | None) -> tuple[str, str | None]:
    """The API apply talks to, and the REST field that carries foreign IDs (if any)."""
    from reconcile.remote.rest.config import REST, select_api
    from reconcile.remote.rest.config import foreign_id_field as choose_foreign_id_field

    chosen = select_api(api, env().environ, emulator=use_emulator)
    if chosen == REST and endpoint:
        raise UsageError("--endpoint is the SOAP endpoint; the REST API reads MARKETO_REST_ENDPOINT")
    return chosen, choose_foreign_id_field(foreign_id_field, env().environ, emulator=use_emulator)


def _refresh_for_apply(stack, api: str, credentials, current, state_path: Path, options, use_emulator: bool):
    """The drift apply --refresh / --refresh-only works from, and the REST client that read it (kept
    open, so writes through REST share its rate limiter and call slots)."""
    from reconcile.remote.rest.config import REST

    if use_emulator and api != REST:
        raise UsageError("--refresh reads through the REST API: with --emulator, add --api rest")
    reader = _rest_client(_read_credentials(api, credentials), options.concurrency)
    stack.callback(reader.close)
    return _refresh(current, state_path, reader, options.concurrency), reader


def _nothing_to_apply(drift, current, state_path: Path, auto_approve: bool, endpoint: str) -> int:
    """Nothing to send; after a refresh, the state may still have Marketo's values to learn."""
    if drift is not None and drift.has_drift:
        return _record_refresh(drift, current, state_path, auto_approve, endpoint, shown=True)
    env().out("Nothing to apply.")
    return ExitStatus.SUCCESS


def _check_refresh_options(refresh: bool, refresh_only: bool, plan_file: Optional[Path]) -> None:
    if refresh and refresh_only:
        raise UsageError("--refresh and --refresh-only are mutually exclusive")
    if (refresh or refresh_only) and plan_file is not None:
        raise UsageError("a saved plan is applied exactly as planned: --refresh and --refresh-only cannot be "
                         "combined with PLAN_FILE")


def _record_refresh(drift, current, state_path: Path, auto_approve: bool, endpoint: str,
                    shown: bool = False) -> int:
    """`apply --refresh-only`: show what the state will learn, ask, record it. Nothing is sent."""
    if not shown:
        env().out(_refresh_report(drift))
    if not drift.has_drift:
        env().out("Nothing to record: the state matches Marketo.")
        return ExitStatus.SUCCESS
    env().out("The state will record Marketo's current values above; nothing is sent to Marketo.")
    if not auto_approve:
        _confirm(endpoint, question=f"Record these values from {visible(endpoint)} in {visible(state_path)}?")
    written = _write_refreshed(drift, current, state_path)
    env().out(f"Recorded Marketo's values of {len(drift.leads)} lead{'' if len(drift.leads) == 1 else 's'} in "
              f"{visible(state_path)} (serial {written.serial}); nothing was sent to Marketo.")
    return ExitStatus.SUCCESS


def _refresh_report(drift) -> str:
    from reconcile.core.render import render_drift

    return render_drift(drift, color=env().color)


def _write_refreshed(drift, current, state_path: Path):
    """The refreshed state, written (the caller holds the lock)."""
    from reconcile.store.state import with_leads, write_state

    refreshed = with_leads(current, drift.refreshed.leads)
    write_state(state_path, refreshed)
    return refreshed


def _credentials_from_env(endpoint: str | None, api: str = "soap"):
    from reconcile.remote.soap.transport import Credentials

    if api == "rest":
        from reconcile.remote.rest.config import RestCredentials

        return RestCredentials.from_env(env().environ)
    return Credentials.from_env(env().environ, endpoint_override=endpoint)


def _rest_client(credentials, concurrency: int = 10):
    from reconcile.remote.rest.client import RestClient

    environment = env()  # the client logs from its worker threads, outside this context
    log = environment.debug_log if environment.debug else None
    return RestClient(credentials, max_concurrency=concurrency, log=log)


def _rest_catalog(client, state_path: Path, refresh: bool = False):
    """The instance's fields: the describe cache, fetched (one call) and saved when absent or asked."""
    from reconcile.inputs.fields import FieldCatalog, load_catalog, save_catalog

    instance = client.credentials.instance
    catalog = None if refresh else load_catalog(state_path, instance)
    if catalog is None:
        saved = save_catalog(state_path, instance, client.describe())
        catalog = load_catalog(state_path, instance)
        env().err(f"Saved {len(catalog or FieldCatalog([]))} lead fields of {instance} to {saved}.")
    return catalog


def _rest_transport(credentials, desired, plan, state_path: Path, options, foreign_id_field: str | None,
                    client=None):
    """The REST transport, once the lead files are known to fit the instance's fields. `client`: the
    refresh's, so reads and writes share one rate limiter and one set of call slots."""
    from reconcile.apply import record_for
    from reconcile.apply.foreignid import foreign_id_leads, where
    from reconcile.remote.rest.payload import missing_foreign_id_field_message
    from reconcile.remote.rest.transport import RestTransport

    if not foreign_id_field:
        refused = foreign_id_leads(plan)
        if refused:
            raise UsageError(missing_foreign_id_field_message(len(refused), where(refused)))
    # only a lead that declares a foreign ID can send one: the others' records need not be built
    keyed = bool(foreign_id_field) and any(
        True for a in plan.actions if a.kind != "unchanged" and a.sends_record and a.lead is not None
        and a.lead.foreign_sys_person_id is not None and record_for(a).foreign_sys_person_id is not None)
    _refuse_foreign_id_clashes(desired.leads)
    client = client if client is not None else _rest_client(credentials, options.concurrency)
    try:
        catalog = _rest_catalog(client, state_path)
        _check_fields(desired, state_path, catalog)
        field = catalog.resolve_rest_name(foreign_id_field, "--foreign-id-field") if keyed else None
        transport = RestTransport(client, catalog.rest_names(), field)
    except BaseException:
        client.close()
        raise
    return transport


def _refuse_foreign_id_clashes(leads) -> None:
    """REST keeps a foreign ID in one custom field, without its type: SFDC 42 and CUSTOM 42 would be
    one lead there, and both would be sent to it."""
    from reconcile.errors import InputError, InputErrors

    first: dict[str, object] = {}
    errors = []
    for lead in leads:
        if lead.foreign_sys_person_id is None:
            continue
        other = first.setdefault(lead.foreign_sys_person_id, lead)
        if other is not lead and other.effective_foreign_sys_type != lead.effective_foreign_sys_type:
            errors.append(InputError(
                f"foreignSysPersonId {lead.foreign_sys_person_id!r} ({lead.effective_foreign_sys_type}) is also "
                f"declared as {other.effective_foreign_sys_type} at {other.location}; through the REST API "
                "both would be the same lead (its foreign-ID field has no type)", lead.location))
    if errors:
        raise InputErrors(errors)


@contextlib.contextmanager
def _embedded_emulator(state_path: Path, api: str = "soap"):
    """The built-in emulator, in-process on a free loopback port, with a database that persists
    beside the state so a second run sees what the first one created."""
    import secrets

    from reconcile.emulator import Emulator, EmulatorConfig, create_database
    from reconcile.remote.rest.config import EMULATOR_FOREIGN_ID_FIELD
    from reconcile.remote.soap.transport import Credentials

    db_path = state_path.parent / ".reconcile" / "emulator-db.json"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    _ignore_in_git(db_path.parent)
    if create_database(db_path):
        env().err(f"Created the emulator's demo database at {db_path}.")
    key = secrets.token_hex(20)  # lives only in this process: nothing to leak
    secret = secrets.token_hex(20)
    config = EmulatorConfig(encryption_key=key, client_secret=secret, db_path=db_path,
                            extra_fields=frozenset({EMULATOR_FOREIGN_ID_FIELD}))
    with Emulator(config) as running:
        if api == "rest":
            from reconcile.remote.rest.config import RestCredentials

            env().err(f"Using the built-in Marketo emulator's REST API at {running.rest_endpoint}.")
            yield RestCredentials(base_url=running.rest_endpoint, identity_url=f"{running.rest_endpoint}/identity",
                                  client_id=running.config.client_id, client_secret=secret)
            return
        env().err(f"Applying to the built-in Marketo emulator at {running.endpoint}.")
        yield Credentials(endpoint=running.endpoint, user_id=running.config.user_id, encryption_key=key)


def _ignore_in_git(directory: Path) -> None:
    marker = directory / ".gitignore"
    if not marker.exists():
        marker.write_text("# reconcile's local cache and emulator database: never commit\n*\n")


def _confirm(endpoint: str, question: str | None = None) -> None:
    if not env().stdin_isatty:
        raise UsageError("apply needs confirmation but stdin is not interactive; review the plan and pass "
                         "--auto-approve, or apply a saved plan file")
    question = question or f"Apply these changes to {visible(endpoint)}?"
    env().stdout.write(not_a_command(f"\n{question}\n  Only 'yes' will be accepted: "))
    env().stdout.flush()
    try:
        answer = env().stdin.readline()
    except KeyboardInterrupt:
        env().out("\nApply cancelled; nothing was sent.")
        raise typer.Exit(ExitStatus.INTERRUPTED) from None
    if answer.strip() != "yes":
        # Declining is a decision, not a failure (exit 1 means a bug here): nothing was sent, exit 0.
        env().out(("" if answer.endswith("\n") else "\n") + "Apply cancelled; nothing was sent.")
        raise typer.Exit(ExitStatus.SUCCESS)


def _make_transport(credentials, concurrency: int, rate_limiter=None):
    from reconcile.remote.soap.transport import SoapTransport

    environment = env()  # the transport logs from its worker threads, outside this context
    log = environment.debug_log if environment.debug else None
    workers = os.cpu_count() or 1  # envelopes are built (and xmlschema-validated) on every core
    return SoapTransport(credentials, max_concurrency=concurrency, prepare_workers=workers, log=log,
                         rate_limiter=rate_limiter)


def _print_event(event) -> None:
    from reconcile import apply as applier

    if isinstance(event, applier.JournalRecovered):
        env().warn(event.report.summary())
    elif isinstance(event, applier.ApplyWarning):
        env().warn(event.message)
    elif isinstance(event, applier.BatchRetrying):
        env().err(f"call {event.batch}: retrying in {event.delay:.1f} s after {event.reason}")
    elif isinstance(event, applier.BatchFailed):
        env().err(f"call {event.batch}: {event.error}")


def _run_apply(plan, current, state_path: Path, transport, options, calls=None):
    """Run the applier with a progress display and Ctrl-C / SIGTERM turned into a graceful stop."""
    import signal
    import threading

    from reconcile import apply as applier

    stop = threading.Event()
    progress = _Progress(total_records=plan.records_to_send, calls=plan.calls)
    restore = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            restore.append((signum, signal.signal(signum, lambda *_: stop.set())))

    failures = []

    def on_event(event) -> None:
        if isinstance(event, applier.BatchFailed) and not failures:
            failures.append(event)  # the first failure ends the apply: its error line says it once
        else:
            _print_event(event)
        progress.update(event)

    try:
        return applier.apply_plan(plan, current, state_path, transport, options=options, on_event=on_event,
                                  stop=stop, calls=calls)
    except ReconcileError as exc:
        report = getattr(exc, "report", None)
        if report is not None:
            progress.close()
            env().out(report.summary("interrupted" if exc.exit_status == ExitStatus.INTERRUPTED else "failed"))
        raise
    finally:
        progress.close()
        for signum, handler in restore:
            signal.signal(signum, handler)


class _Progress:
    """A progress bar on stderr when it is a terminal and there is more than one call; otherwise a
    line per answered call, so CI logs show progress too."""

    def __init__(self, total_records: int, calls: int):
        self.calls = calls
        self.bar = None
        if calls > 1 and env().stderr_isatty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                                TimeElapsedColumn(), console=Console(file=env().stderr), transient=True)
            self.task = self.bar.add_task("apply", total=total_records)
            self.bar.start()

    def update(self, event) -> None:
        from reconcile import apply as applier

        if not isinstance(event, applier.BatchAnswered):
            return
        if self.bar is not None:
            self.bar.advance(self.task, event.records)
        elif self.calls > 1:
            adopted = f", {event.adopted} adopted" if event.adopted else ""
            refused = f", {event.refused} not recorded (conflicting lead IDs)" if event.refused else ""
            env().err(f"call {event.batch}/{self.calls}: {event.created} created, {event.updated} updated"
                      f"{adopted}, {event.failed} failed{refused}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@app.command("fields")
def fields_command(
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask Marketo again (one Describe call).")] = False,
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Describe the built-in emulator's REST face.")] = False,
    api: ApiOption = None,
    debug: DebugOption = False,
) -> int:
    """Show the instance's lead fields (REST Describe), cached under .reconcile/ beside the state."""
    from reconcile.inputs.fields import load_catalog
    from reconcile.remote.rest.config import REST, select_api

    if select_api(api or REST, env().environ) != REST:
        raise UsageError("`reconcile fields` reads Marketo's REST Describe: it needs --api rest and the REST "
                         "credentials (SOAP has no describe call)")
    catalog = None if refresh or use_emulator else load_catalog(state, _rest_instance())
    if catalog is None:
        with contextlib.ExitStack() as stack:
            credentials = (stack.enter_context(_embedded_emulator(state, REST)) if use_emulator
                           else _credentials_from_env(None, REST))
            client = _rest_client(credentials, 1)
            stack.callback(client.close)
            catalog = _rest_catalog(client, state, refresh=True)
    env().out(_fields_table(catalog))
    return ExitStatus.SUCCESS


def _fields_table(catalog) -> str:
    rows = [("LEAD FILE (SOAP)", "REST", "TYPE", "LENGTH", "")]
    for name in sorted(catalog.fields, key=str.lower):
        spec = catalog.fields[name]
        rows.append((name, spec.rest_name or "-", spec.data_type or "-", str(spec.length or "-"),
                     "read-only" if spec.read_only else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths + [0])).rstrip() for row in rows]
    lines.append(f"{len(catalog)} fields of {catalog.instance or 'the instance'}, described at "
                 f"{catalog.fetched_at or 'an unknown time'} (cached in {catalog.source}).")
    return "\n".join(lines)


@app.command("import")
def import_command(
    out: Annotated[Path, typer.Option("--out", help="The lead file to write (inside --leads).")],
    lead_id: Annotated[Optional[list[str]], typer.Option(
        "--id", metavar="ID", help="A Marketo lead ID (repeatable).")] = None,
    email: Annotated[Optional[list[str]], typer.Option(
        "--email", metavar="EMAIL", help="A lead's email (repeatable).")] = None,
    ids_from: Annotated[Optional[Path], typer.Option(
        "--ids-from", help="A file of lead IDs, one a line (# comments).", show_default=False)] = None,
    fields: Annotated[Optional[str], typer.Option(
        "--fields", help="Fields to import, comma-separated (default: the standard person fields).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Import from the built-in emulator (database under .reconcile/).")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=10, help="Calls in flight at once.")] = 4,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    debug: DebugOption = False,
) -> int:
    """Adopt existing Marketo leads: write them as a lead file keyed by leadId and record them in the state,
    so the next plan is empty. Reads through REST Get Leads (credentials as for `apply --api rest`)."""
    from reconcile import adopt
    from reconcile import apply as applier
    from reconcile.adopt import importer
    from reconcile.inputs.files import parse_size
    from reconcile.inputs.validate import load_desired
    from reconcile.store import lock
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance, check_state_path, finish_interrupted_write

    _import_api(api, use_emulator)
    request = adopt.build_request(lead_id or [], email or [], ids_from)
    asked_fields = [name.strip() for name in fields.split(",") if name.strip()] if fields is not None else None
    importer.check_destination(out, leads, force)
    check_state_path(state)
    with contextlib.ExitStack() as stack:
        credentials = (stack.enter_context(_embedded_emulator(state, "rest")) if use_emulator
                       else _credentials_from_env(None, "rest"))
        held = lock.acquire(state, "import", on_warning=lambda text: env().warn(text))
        stack.callback(held.release)
        stack.callback(_notice_if_migrated(state))
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        instance = instance_of(credentials.endpoint)
        current = check_instance(current, instance, state)
        desired = load_desired(leads, max_file_bytes=parse_size(max_file_size))
        client = _rest_client(credentials, concurrency)
        stack.callback(client.close)
        settings = importer.ImportSettings(request=request, fields=asked_fields, out=out, state_path=state,
                                           instance=instance, concurrency=concurrency)
        result = importer.run_import(client, lambda: _rest_catalog(client, state), settings, desired.leads, current,
                                     on_event=_read_event_printer(env()))
    problems = result.adopted.problems
    for line in (*problems[:20], *([f"{len(problems) - 20} more values left out"] if len(problems) > 20 else []),
                 *importer.missing_lines(result.adopted)):
        env().warn(line)
    entries = result.adopted.entries
    env().out(visible(f"Imported {len(entries)} lead(s) into {out} and recorded them in {state} "
                      f"({result.calls} Get Leads call(s)); `reconcile plan` now finds nothing to do for them."))
    if result.dropped:
        env().warn(f"{result.dropped} lead(s) the replaced {out} declared are no longer declared: plan shows them "
                   "as orphaned")
    return ExitStatus.SUCCESS


def _import_api(api: str | None, use_emulator: bool) -> None:
    from reconcile.remote.rest.config import ENV_API, REST, select_api

    explicit = api or (env().environ.get(ENV_API) or "").strip() or None
    chosen = select_api(api, env().environ) if explicit or not use_emulator else REST
    if chosen != REST:
        raise UsageError("import reads leads through Marketo's REST API (Get Leads); no live Marketo serves reads "
                         "over SOAP. Use --api rest with MARKETO_REST_ENDPOINT, MARKETO_CLIENT_ID and "
                         "MARKETO_CLIENT_SECRET set (or --emulator)")


def _read_event_printer(environment: Environment):
    """Progress of an import's reads; called from its worker threads, outside this context."""
    from reconcile.adopt.reader import CallAnswered, CallRetrying

    def show(event) -> None:
        if isinstance(event, CallRetrying):
            environment.err(f"read {event.call.number}: retrying in {event.delay:.1f} s after {event.reason}")
        elif isinstance(event, CallAnswered) and event.calls > 1:
            environment.err(f"read {event.answered}/{event.calls}: {event.found} lead(s) by "
                            f"{event.call.filter_type}")

    return show


@app.command("force-unlock")
def force_unlock(lock_id: Annotated[str, typer.Argument(help="The lock ID a locked run printed.")],
                 state: StateOption = Path("reconcile.state.json"), debug: DebugOption = False) -> int:
    """Remove a lock left by a run on another machine (only if its ID matches)."""
    from reconcile.store import lock

    removed = lock.force_unlock(state, lock_id)
    env().out(visible(f"Removed lock {removed.id} on {state} (held by {removed.describe()})."))
    return ExitStatus.SUCCESS


@state_app.command("rm")
def state_rm(key: Annotated[str, typer.Argument(help="The state key to forget (Marketo keeps the lead).")],
             state: StateOption = Path("reconcile.state.json"), debug: DebugOption = False) -> int:
    """Forget a lead from the state. Nothing is sent to Marketo."""
    from reconcile import apply as applier
    from reconcile.store import lock
    from reconcile.core.planner import forget
    from reconcile.store.state import check_state_path, finish_interrupted_write, with_leads, write_state

    check_state_path(state)
    with lock.acquire(state, "state rm", on_warning=lambda text: env().warn(text)):
        notice = _notice_if_migrated(state)
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        target = key if key in current.leads else _normalise_key(key)
        if target not in current.leads:
            raise UsageError(f"no lead {key!r} in {state} (see `reconcile state list`)")
        write_state(state, with_leads(current, forget(current.leads, [target])))
        notice()
    env().out(visible(f"Removed {target} from {state}; the lead stays in Marketo."))
    return ExitStatus.SUCCESS


@state_app.command("rebind")
def state_rebind(
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option("--emulator", help="Bind the state to the built-in emulator.")] = False,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", help="The new instance's endpoint URL (default: MARKETO_SOAP_ENDPOINT, else "
        "MARKETO_REST_ENDPOINT).", show_default=False)] = None,
    debug: DebugOption = False,
) -> int:
    """Record that the state's leads now live in another Marketo instance. Nothing is sent."""
    from reconcile import apply as applier
    from reconcile.store import lock
    from reconcile.store.instance import EMULATOR, instance_of
    from reconcile.store.state import check_state_path, finish_interrupted_write, rebind, write_state

    if use_emulator and endpoint:
        raise UsageError("--emulator and --endpoint are mutually exclusive")
    url = endpoint or env().environ.get("MARKETO_SOAP_ENDPOINT") or env().environ.get("MARKETO_REST_ENDPOINT")
    if not use_emulator and not url:
        raise UsageError("state rebind needs the new instance: --endpoint URL, --emulator, or MARKETO_SOAP_ENDPOINT "
                         "/ MARKETO_REST_ENDPOINT in the environment")
    instance = EMULATOR if use_emulator else instance_of(url)
    check_state_path(state)
    with lock.acquire(state, "state rebind", on_warning=lambda text: env().err(f"warning: {text}")):
        notice = _notice_if_migrated(state)
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        before = current.instance
        write_state(state, rebind(current, instance))
        notice()
    env().out(f"Bound {state} to Marketo instance {instance}" + (f" (was {before})." if before else "."))
    return ExitStatus.SUCCESS


def _notice_if_migrated(state: Path):
    """A callable that says, once, that a format 1 state on disk was migrated since this was called."""
    from reconcile.store.state import FORMAT_VERSION, format_on_disk, shard_dir_for

    was = format_on_disk(state)

    def notice() -> None:
        if was is not None and was < FORMAT_VERSION and format_on_disk(state) == FORMAT_VERSION:
            env().err(f"note: migrated {state} to state format {FORMAT_VERSION}: the leads now live in "
                      f"{shard_dir_for(state)}/, one line each; commit both")

    return notice


@app.command()
def emulator(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Off loopback it needs your own "
                                                     "--encryption-key and --client-secret.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")] = 8080,
    user_id: Annotated[Optional[str], typer.Option("--user-id", help="The mktowsUserId it accepts.")] = None,
    encryption_key: Annotated[Optional[str], typer.Option(
        "--encryption-key", help="The key it checks SOAP signatures with (default: MARKETO_ENCRYPTION_KEY, "
        "else a built-in demo key).", show_default=False)] = None,
    client_id: Annotated[Optional[str], typer.Option(
        "--client-id", help="The REST client id it accepts (default: MARKETO_CLIENT_ID, else a demo id).",
        show_default=False)] = None,
    client_secret: Annotated[Optional[str], typer.Option(
        "--client-secret", help="The REST client secret it accepts (default: MARKETO_CLIENT_SECRET, else a "
        "built-in demo secret).", show_default=False)] = None,
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
    daily_quota: Annotated[int, typer.Option("--daily-quota", min=1, help="Calls per day.")] = 10_000,
    api: Annotated[Optional[str], typer.Option(
        "--api", help="Print the export lines of this API only: soap or rest (env RECONCILE_API). Both "
        "faces serve either way.", show_default=False)] = None,
    debug: DebugOption = False,
) -> int:
    """Run the built-in Marketo emulator (SOAP and REST over one database) until Ctrl-C: the demo
    instance, with lead 1090238 (leads/adopted.yaml) and the custom field crmId for foreign IDs."""
    from reconcile import emulator as emu
    from reconcile.remote.rest.config import EMULATOR_FOREIGN_ID_FIELD, ENV_API, select_api

    environ = env().environ
    key = encryption_key or environ.get("MARKETO_ENCRYPTION_KEY")
    secret = client_secret or environ.get("MARKETO_CLIENT_SECRET")
    problem = emu.exposure_problem(host, key_chosen=bool(key), secret_chosen=bool(secret))
    if problem:
        raise UsageError(problem)
    try:
        config = emu.EmulatorConfig(
            user_id=user_id or emu.DEFAULT_USER_ID, encryption_key=key or emu.DEFAULT_ENCRYPTION_KEY,
            client_id=client_id or environ.get("MARKETO_CLIENT_ID") or emu.DEFAULT_CLIENT_ID,
            client_secret=secret or emu.DEFAULT_CLIENT_SECRET, token_ttl=token_ttl, db_path=db,
            extra_fields=frozenset({EMULATOR_FOREIGN_ID_FIELD, *(field or ())}), initial_leads=emu.DEMO_LEADS,
            max_batch=max_batch, rate_calls=rate_calls,
            rate_window=rate_window, max_concurrency=max_concurrency, daily_quota=daily_quota)
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


def _split_global_options(argv: list[str]) -> tuple[list[str], bool, bool]:
    """`--debug` and `--error-format FORMAT` are accepted anywhere, before or after the command.
    Returns the other arguments, debug, and whether errors are JSON."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut:]
    rest: list[str] = []
    debug = json_errors = False
    index = 0
    while index < len(head):
        arg = head[index]
        index += 1
        if arg == "--debug":
            debug = True
        elif arg == "--error-format" and index < len(head) and head[index] in ("text", "json"):
            json_errors = head[index] == "json"
            index += 1
        elif arg in ("--error-format=text", "--error-format=json"):
            json_errors = arg.endswith("json")
        else:
            rest.append(arg)
    return rest + tail, debug, json_errors


def _without_value_placeholders(command) -> None:
    """Typer shows `<bool>` after every flag, as if it took a value: show nothing instead."""
    params = list(command.params)
    help_option = command.get_help_option(typer.Context(command))
    for param in params + ([help_option] if help_option is not None else []):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _without_value_placeholders(sub)


def _usage_error(environment: Environment, message: str) -> None:
    if environment.json_errors:
        environment.error(UsageError(message))
        return
    environment.err(f"error: {message}")
    environment.err("Run 'reconcile --help' (or 'reconcile COMMAND --help') for usage.")


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


def run(argv: list[str], environment: Environment | None = None) -> int:
    """Run the CLI with `argv` (without the program name); return the exit status. Never raises."""
    argv, debug, json_errors = _split_global_options(list(argv))
    environment = environment or Environment()
    environment.debug = environment.debug or debug
    environment.json_errors = environment.json_errors or json_errors
    token = _current_env.set(environment)
    try:
        command = typer.main.get_command(app)
        _without_value_placeholders(command)
        result = command.main(args=argv or ["--help"], prog_name="reconcile", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitStatus.SUCCESS
    except _click_exceptions.NoArgsIsHelpError as exc:  # `reconcile state`: its help, like --help
        if exc.format_message().strip():
            environment.out(exc.format_message())
        return ExitStatus.SUCCESS
    except _click_exceptions.UsageError as exc:
        _usage_error(environment, exc.format_message())
        return ExitStatus.USAGE
    except _click_exceptions.ClickException as exc:
        environment.error(UsageError(exc.format_message()))
        return ExitStatus.USAGE
    except (typer.Abort, KeyboardInterrupt):
        environment.error(Interrupted("interrupted"))
        return ExitStatus.INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except ReconcileError as exc:
        if environment.debug:
            environment.err_block(traceback.format_exc().rstrip())
        environment.error(exc)
        return exc.exit_status
    except Exception as exc:  # a bug: say so, and how to get the details
        if environment.debug:
            environment.err_block(traceback.format_exc().rstrip())
        else:
            environment.error(ReconcileError(f"unexpected {type(exc).__name__}: {exc}"))
            environment.err("This is a bug in reconcile; please report it. Run again with --debug for the traceback.")
        return ExitStatus.ERROR
    finally:
        _current_env.reset(token)


def main() -> None:
    status = run(sys.argv[1:])
    # Everything durable is already written and fsync'd; skipping the interpreter's teardown saves
    # freeing a few hundred thousand objects one by one (~0.1 s on a 100k-lead plan).
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(int(status))
