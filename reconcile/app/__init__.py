"""The application layer: plan, apply, refresh and import, run from a typed `Operation`.

Below the CLI and above everything else. It never prints and never decides an exit status: what a user
should see goes to the `Session`'s `on_event` as events, questions go to its `confirm`, and each run
returns a result for the front end to turn into text and an exit status.

Modules: `operation` (the options object), `session` (events, confirmation, stop), `plan`, `apply`,
`refresh`, `importing`, and below them `transports` (credentials, clients, the embedded emulator),
`inputs` (lead files, state, the checks transport construction needs) and `rendering`.
"""
