"""The command line: the only package that prints or decides the process's exit status.

`run(argv, environment)` runs one command in-process and returns its exit status; `main(args, env)`
is the console entry point. Modules: `environment` (streams and variables), `root` (the command tree
and shared options), `entry` (running a command), `events` (the session the application layer gets:
its events shown here, its questions asked here), `progress` (confirmation, apply's progress), and
one module per command group: `plan` (validate, plan), `apply`, `state` (state ..., force-unlock),
`fields` (fields, import), `emulator`, `ci` (the steps of action.yml, over reconcile/ci). The work
itself is done below, in reconcile/app.
"""

from reconcile.cli.entry import main, run
from reconcile.cli.environment import Environment, OutputFormat, TextOrJson, env
from reconcile.errors import ExitStatus

__all__ = ["Environment", "ExitStatus", "OutputFormat", "TextOrJson", "env", "main", "run"]
