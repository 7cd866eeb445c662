"""The command line: the only package that prints or decides the process's exit status.

`run(argv, environment)` runs one command in-process and returns its exit status; `main(args, env)`
is the console entry point. Modules: `environment` (streams and variables), `root` (the command tree
and shared options), `entry` (running a command), and one module per command group: `plan`
(validate, plan), `apply`, `state` (state ..., force-unlock), `fields` (fields, import), `emulator`,
`ci` (the steps of action.yml, over reconcile/ci). Helpers they share: `inputs`, `rendering`,
`transports`, `refresh`, `progress`.
"""

from reconcile.cli.entry import main, run
from reconcile.cli.environment import Environment, OutputFormat, TextOrJson, env
from reconcile.errors import ExitStatus

__all__ = ["Environment", "ExitStatus", "OutputFormat", "TextOrJson", "env", "main", "run"]
