"""`reconcile state list|show|rm|rebind` and `reconcile force-unlock`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import env
from reconcile.cli.progress import _print_event
from reconcile.cli.root import DebugOption, StateOption, app, state_app
from reconcile.core.safetext import json_text, visible
from reconcile.errors import ExitStatus, UsageError

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
    from reconcile.app.inputs import _notice_if_migrated
    from reconcile import apply as applier
    from reconcile.store import lock
    from reconcile.core.planner import forget
    from reconcile.store.state import check_state_path, finish_interrupted_write, with_leads, write_state

    check_state_path(state)
    with lock.acquire(state, "state rm", on_warning=lambda text: env().warn(text)):
        notice = _notice_if_migrated(state, env().err)
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
    from reconcile.app.inputs import _notice_if_migrated
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
        notice = _notice_if_migrated(state, env().err)
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        before = current.instance
        write_state(state, rebind(current, instance))
        notice()
    env().out(f"Bound {state} to Marketo instance {instance}" + (f" (was {before})." if before else "."))
    return ExitStatus.SUCCESS
