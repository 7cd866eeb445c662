"""Credentials, clients and transports for the chosen Marketo API, and the built-in emulator.

Transport construction checks the lead files against what the instance takes (its fields, REST's
foreign IDs) with `reconcile.app.inputs`, below it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from reconcile.app.inputs import _cache_dir, _check_fields, _refuse_foreign_id_clashes
from reconcile.app.session import Session
from reconcile.errors import UsageError


def _credentials_from_env(session: Session, endpoint: str | None, api: str = "soap"):
    from reconcile.remote.soap.transport import Credentials

    if api == "rest":
        from reconcile.remote.rest.config import RestCredentials

        return RestCredentials.from_env(session.environ)
    return Credentials.from_env(session.environ, endpoint_override=endpoint)


def _rest_client(session: Session, credentials, concurrency: int = 10):
    from reconcile.remote.rest.client import RestClient

    return RestClient(credentials, max_concurrency=concurrency, log=session.debug_log)


def _rest_catalog(session: Session, client, state_path: Path, refresh: bool = False):
    """The instance's fields: the Describe kept in the user's cache directory, or fetched (one call) and
    kept when there is none, when asked, and always in CI (where nothing kept is trusted)."""
    from reconcile.inputs.fields import FieldCatalog, load_catalog, save_catalog

    instance = client.credentials.instance
    workspace = _cache_dir(state_path, session.environ)
    fresh = refresh or session.environ.get("CI", "").strip().lower() == "true"
    catalog = None if fresh else load_catalog(workspace, instance)
    if catalog is None:
        saved = save_catalog(workspace, instance, client.describe())
        catalog = load_catalog(workspace, instance)
        session.note(f"Saved {len(catalog or FieldCatalog([]))} lead fields of {instance} to {saved}.")
    return catalog


def _rest_transport(session: Session, credentials, desired, plan, state_path: Path, options, foreign_id_field: str | None,
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
    client = client if client is not None else _rest_client(session, credentials, options.concurrency)
    try:
        if plan.records_to_send:
            catalog = _rest_catalog(session, client, state_path)
            _check_fields(desired, state_path, session.environ, catalog)
            field = catalog.resolve_rest_name(foreign_id_field, "--foreign-id-field") if keyed else None
            transport = RestTransport(client, catalog.rest_names(), field)
        else:  # no Sync Leads call: its field names are not needed, and Describe would be a call of the window
            transport = RestTransport(client, {}, None)
    except BaseException:
        client.close()
        raise
    return transport


@contextlib.contextmanager
def _embedded_emulator(session: Session, state_path: Path, api: str = "soap", rest_face: list | None = None):
    """The built-in emulator, in-process on a free loopback port, with a database that persists in
    the workspace's folder of the user's cache directory, so a second run sees what the first created.
    `rest_face`, if given, gets the credentials of its REST face too (through which SOAP applies look
    up static lists)."""
    import secrets

    from reconcile.emulator import Emulator, EmulatorConfig, create_database
    from reconcile.remote.rest.config import EMULATOR_FOREIGN_ID_FIELD
    from reconcile.remote.soap.transport import Credentials

    db_path = _cache_dir(state_path, session.environ) / "emulator-db.json"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    if create_database(db_path):
        session.note(f"Created the emulator's demo database at {db_path}.")
    key = secrets.token_hex(20)  # lives only in this process: nothing to leak
    secret = secrets.token_hex(20)
    config = EmulatorConfig(encryption_key=key, client_secret=secret, db_path=db_path,
                            extra_fields=frozenset({EMULATOR_FOREIGN_ID_FIELD}))
    with Emulator(config) as running:
        from reconcile.remote.rest.config import RestCredentials

        rest = RestCredentials(base_url=running.rest_endpoint, identity_url=f"{running.rest_endpoint}/identity",
                               client_id=running.config.client_id, client_secret=secret)
        if api == "rest":
            session.note(f"Using the built-in Marketo emulator's REST API at {running.rest_endpoint}.")
            yield rest
            return
        if rest_face is not None:
            rest_face.append(rest)
        session.note(f"Applying to the built-in Marketo emulator at {running.endpoint}.")
        yield Credentials(endpoint=running.endpoint, user_id=running.config.user_id, encryption_key=key)


def _make_transport(session: Session, credentials, concurrency: int, rate_limiter=None):
    from reconcile.remote.soap.transport import SoapTransport

    log = session.debug_log  # the transport logs from its worker threads
    workers = os.cpu_count() or 1  # envelopes are built (and xmlschema-validated) on every core
    return SoapTransport(credentials, max_concurrency=concurrency, prepare_workers=workers, log=log,
                         rate_limiter=rate_limiter)
