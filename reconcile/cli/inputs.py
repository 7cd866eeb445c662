"""Reading what the commands plan from: the lead files, the state, and the cached field catalog."""

from __future__ import annotations

from pathlib import Path

from reconcile.cli.environment import env
from reconcile.errors import ReconcileError

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


def _notice_if_migrated(state: Path):
    """A callable that says, once, that a format 1 state on disk was migrated since this was called."""
    from reconcile.store.state import FORMAT_VERSION, format_on_disk, shard_dir_for

    was = format_on_disk(state)

    def notice() -> None:
        if was is not None and was < FORMAT_VERSION and format_on_disk(state) == FORMAT_VERSION:
            env().err(f"note: migrated {state} to state format {FORMAT_VERSION}: the leads now live in "
                      f"{shard_dir_for(state)}/, one line each; commit both")

    return notice
