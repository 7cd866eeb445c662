"""Credentials, clients and transports for the chosen Marketo API, and the built-in emulator."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from reconcile.cli.environment import env
from reconcile.cli.inputs import _check_fields
from reconcile.errors import UsageError

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
    from reconcile.remote.rest.payload import missing_foreign_id_field_message
    from reconcile.remote.rest.transport import RestTransport

    # only a lead that declares a foreign ID can send one: the others' records need not be built
    keyed_actions = (a for a in plan.actions if a.kind != "unchanged" and a.sends_record and a.lead is not None
                     and a.lead.foreign_sys_person_id is not None and record_for(a).foreign_sys_person_id is not None)
    if not foreign_id_field:
        keyed = sum(1 for _ in keyed_actions)
        if keyed:
            raise UsageError(missing_foreign_id_field_message(keyed))
    else:
        keyed = any(True for _ in keyed_actions)  # with a field named, one is enough to need it
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


# The built-in emulator's custom lead field for foreign system IDs through REST (--foreign-id-field).
EMULATOR_FOREIGN_ID_FIELD = "ForeignSysId"


@contextlib.contextmanager
def _embedded_emulator(state_path: Path, api: str = "soap"):
    """The built-in emulator, in-process on a free loopback port, with a database that persists
    beside the state so a second run sees what the first one created."""
    import secrets

    from reconcile.emulator import Emulator, EmulatorConfig, create_database
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


def _make_transport(credentials, concurrency: int, rate_limiter=None):
    from reconcile.remote.soap.transport import SoapTransport

    environment = env()  # the transport logs from its worker threads, outside this context
    log = environment.debug_log if environment.debug else None
    workers = os.cpu_count() or 1  # envelopes are built (and xmlschema-validated) on every core
    return SoapTransport(credentials, max_concurrency=concurrency, prepare_workers=workers, log=log,
                         rate_limiter=rate_limiter)
