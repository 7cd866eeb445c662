"""`reconcile lists`: the instance's static lists, cached beside the describe cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reconcile.app.lists import instance_lists
from reconcile.cli.environment import env
from reconcile.cli.events import session_for
from reconcile.cli.root import DebugOption, StateOption, app
from reconcile.core.safetext import visible
from reconcile.errors import ExitStatus


@app.command("lists")
def lists_command(
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask Marketo again (its lists, 300 a page).")] = False,
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="The built-in emulator's lists (database in the user's cache directory).")] = False,
    debug: DebugOption = False,
) -> int:
    """Show the instance's static lists (REST), the names lead files give in `lists:`."""
    known, instance, source = instance_lists(session_for(env()), state, refresh, use_emulator)
    rows = [("ID", "NAME")] + [(str(item.id), visible(item.name)) for item in sorted(known, key=lambda k: k.id)]
    width = max(len(row[0]) for row in rows)
    lines = [f"{row[0].ljust(width)}  {row[1]}" for row in rows]
    lines.append(f"{len(known)} static list{'' if len(known) == 1 else 's'} of {visible(instance)} "
                 f"(cached in {visible(source)}); a lead file names one by its name, or as id:ID.")
    env().out("\n".join(lines))
    return ExitStatus.SUCCESS
