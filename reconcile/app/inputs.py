"""Reading what plan and apply work from: the lead files, the state, and the kept field catalog;
and the checks of lead files that do not need Marketo (the cached fields, REST's foreign IDs)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

from reconcile.errors import ReconcileError


def _cache_dir(state_path: Path, environ: Mapping[str, str]) -> Path:
    """This workspace's folder in the user's cache directory (never under the repository)."""
    from reconcile.inputs.cache import workspace_dir

    return workspace_dir(state_path, environ)


def _load_inputs(leads: Path, state_path: Path, max_file_bytes: int, environ: Mapping[str, str]):
    from reconcile.inputs.cache import load_state
    from reconcile.inputs.validate import load_desired

    cache_dir = _cache_dir(state_path, environ)
    # The state is read first: the memory its parse leaves free is taken by the leads (a million
    # leads peak half a gigabyte lower). Its errors still come after the lead files'.
    try:
        state, state_error = load_state(state_path, cache_dir), None
    except ReconcileError as exc:
        state, state_error = None, exc
    desired = load_desired(leads, cache_dir=cache_dir, max_file_bytes=max_file_bytes)
    _check_fields(desired, state_path, environ)
    if state_error is not None:
        raise state_error
    return desired, state


def _check_fields(desired, state_path: Path, environ: Mapping[str, str], catalog=None) -> None:
    """With the instance's fields kept (`reconcile fields`), refuse attributes it cannot take."""
    from reconcile.inputs.fields import check_leads, load_catalog

    if catalog is None:
        catalog = load_catalog(_cache_dir(state_path, environ), _rest_instance(environ))
    if catalog is not None:
        check_leads(desired.leads, catalog)


def skipped_files_warning(leads: Path) -> str | None:
    """The files in the lead directory that look like lead files but are not read, as a warning."""
    from reconcile.inputs.files import skipped_files

    skipped = skipped_files(leads)
    if not skipped:
        return None
    return f"not read: {', '.join(skipped)} (lead files end in .yaml or .yml, in lower case)"


def other_instance_warning(state: Path, api: str, environ: Mapping[str, str]) -> str | None:
    """`plan` makes no call, but says when the endpoint set is not the instance the state belongs to."""
    from reconcile.store.state import other_instance_warning as warning_for

    variable = "MARKETO_REST_ENDPOINT" if api == "rest" else "MARKETO_SOAP_ENDPOINT"
    return warning_for(state, environ.get(variable) or "", variable)


def _rest_instance(environ: Mapping[str, str]) -> str | None:
    from reconcile.remote.rest.config import ENV_REST_ENDPOINT, instance_host

    return instance_host((environ.get(ENV_REST_ENDPOINT) or "").strip())


def _notice_if_migrated(state: Path, say: Callable[[str], None]):
    """A callable that says, once, that a format 1 state on disk was migrated since this was called."""
    from reconcile.store.state import FORMAT_VERSION, format_on_disk, shard_dir_for

    was = format_on_disk(state)

    def notice() -> None:
        if was is not None and was < FORMAT_VERSION and format_on_disk(state) == FORMAT_VERSION:
            say(f"note: migrated {state} to state format {FORMAT_VERSION}: the leads now live in "
                      f"{shard_dir_for(state)}/, one line each; commit both")

    return notice


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
