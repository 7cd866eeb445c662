"""Static lists for plan and apply: the lead files' list names resolved against the instance (its
lists cached like Describe), and the calls that change memberships, over whichever transport applies."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from reconcile.app.inputs import _cache_dir
from reconcile.app.session import Session
from reconcile.core.safetext import visible
from reconcile.errors import InputError, UsageError

Fetch = Callable[[], list]  # -> list[KnownList]


def resolve_lists(session: Session, leads: Sequence, state_path: Path, instance: str | None,
                  fetch: Fetch | None, refresh: bool = False):
    """{name as the lead files give it: KnownList}, checked (exit 3 for a name that matches no list or
    several); None when the lead files name lists and neither a cache nor a connection can tell."""
    from reconcile.inputs.listcatalog import declared_refs, load_lists, resolve, save_lists, unresolved

    first = declared_refs(leads)
    if not first and not refresh:
        return {}
    workspace = _cache_dir(state_path, session.environ)
    known = None if refresh else load_lists(workspace, instance)
    if (known is None or unresolved(first, known)) and fetch is not None and instance:
        known = fetch()
        saved = save_lists(workspace, instance, known)
        session.note(f"Saved {len(known)} static lists of {instance} to {saved}.")
    if known is None:
        return None
    return resolve(first, known, instance or "the instance")


def check_list_names(session: Session, leads: Sequence, state_path: Path) -> None:
    """At plan time: the lead files' list names against the cached lists of the instance, fetched when
    the environment holds REST credentials and the cache cannot settle a name (exit 3 for a name that
    matches no list or several). Without either, apply resolves them."""
    import contextlib

    from reconcile.app.inputs import _rest_instance
    from reconcile.app.transports import _rest_client
    from reconcile.remote import registry
    from reconcile.remote.rest.config import REST, RestCredentials

    if not any(lead.lists for lead in leads):
        return
    instance = _rest_instance(session.environ)
    rest_variables = registry.get(REST).credential_variables
    if not all((session.environ.get(name) or "").strip() for name in rest_variables):
        resolve_lists(session, leads, state_path, instance, None)
        return
    client = _rest_client(session, RestCredentials.from_env(session.environ), 2)
    with contextlib.closing(client):
        resolve_lists(session, leads, state_path, client.credentials.instance, rest_fetch(client))


def read_memberships(session: Session, drift, client, state_path: Path, leads: Sequence = ()):
    """`drift` with the static list memberships Marketo has now: the members of every list the state
    records a member of, and of every list the lead files name, read 300 a page."""
    from dataclasses import replace

    from reconcile.core.membership_drift import lists_to_read, membership_drift
    from reconcile.remote.rest.lists import RestLists

    resolved = resolve_lists(session, leads, state_path, client.credentials.instance, rest_fetch(client)) \
        if leads else {}
    wanted = lists_to_read(drift.refreshed, {ref: known.id for ref, known in (resolved or {}).items()})
    if not wanted:
        return drift
    session.note(f"Reading the members of {len(wanted)} static list{'' if len(wanted) == 1 else 's'}.")
    reader = RestLists(client)
    members = {list_id: _members_or_none(session, reader, list_id, wanted[list_id]) for list_id in sorted(wanted)}
    changes, refreshed = membership_drift(drift.refreshed, members, wanted)
    return replace(drift, memberships=changes, refreshed=refreshed)


def instance_lists(session: Session, state_path: Path, refresh: bool, use_emulator: bool):
    """`reconcile lists`: the instance's static lists, from the cache unless asked (or none is cached),
    as (lists, instance, the cache file)."""
    import contextlib

    from reconcile.app.inputs import _rest_instance
    from reconcile.app.transports import _credentials_from_env, _embedded_emulator, _rest_client
    from reconcile.inputs.listcatalog import cached_path, load_lists, save_lists
    from reconcile.remote.rest.config import REST

    instance = None if use_emulator else _rest_instance(session.environ)
    workspace = _cache_dir(state_path, session.environ)
    known = None if refresh or use_emulator else load_lists(workspace, instance)
    source = cached_path(workspace, instance)
    if known is not None and source is not None:
        return known, instance or source.stem, source
    with contextlib.ExitStack() as stack:
        credentials = (stack.enter_context(_embedded_emulator(session, state_path, REST)) if use_emulator
                       else _credentials_from_env(session, None, REST))
        client = _rest_client(session, credentials, 1)
        stack.callback(client.close)
        instance = client.credentials.instance
        known = rest_fetch(client)()
        return known, instance, save_lists(workspace, instance, known)


def memberships_reader(session: Session, client):
    """For import --lists: the static lists each of some leads is on, read from every list's members
    (a list whose name another list shares is named by its ID)."""
    from collections import Counter

    from reconcile.remote.rest.lists import RestLists

    def memberships_of(lead_ids):
        wanted = set(lead_ids)
        reader = RestLists(client)
        found = reader.all_lists()
        shared = Counter(item.name for item in found)
        session.note(f"Reading the members of {len(found)} static list{'' if len(found) == 1 else 's'}.")
        lists: dict[int, dict[str, int]] = {}
        for item in sorted(found, key=lambda known: known.id):
            ref = item.name if shared[item.name] == 1 and not item.name.startswith("id:") else f"id:{item.id}"
            for lead_id in wanted.intersection(reader.members(item.id)):
                lists.setdefault(lead_id, {})[ref] = item.id
        return lists

    return memberships_of


def _members_or_none(session: Session, reader, list_id: int, name: str) -> frozenset:
    """The list's members; none when Marketo no longer has the list (its memberships went with it)."""
    from reconcile.errors import RemoteError
    from reconcile.remote.rest.codes import NOT_FOUND

    try:
        return frozenset(reader.members(list_id))
    except RemoteError as exc:
        if exc.code != NOT_FOUND:
            raise
        session.warn(f"static list {visible(name)} (id:{list_id}) no longer exists in Marketo: its members are "
                     "read as none")
        return frozenset()


def rest_fetch(client) -> Fetch:
    from reconcile.inputs.listcatalog import KnownList
    from reconcile.remote.rest.lists import RestLists

    return lambda: [KnownList(found.id, found.name) for found in RestLists(client).all_lists()]


class RestListCalls:
    """Add to / Remove from List through REST, by list ID."""

    def __init__(self, client):
        from reconcile.remote.rest.lists import MAX_IDS, RestLists

        self.max_ids = MAX_IDS
        self._lists = RestLists(client)

    def add(self, target, lead_ids, *, stop=None):
        return self._lists.add(target.id, lead_ids, stop=stop)

    def remove(self, target, lead_ids, *, stop=None):
        return self._lists.remove(target.id, lead_ids, stop=stop)


class SoapListCalls:
    """listOperation ADDTOLIST / REMOVEFROMLIST through SOAP, by list name."""

    def __init__(self, transport):
        from reconcile.remote.soap.lists import MAX_LIST_LEADS, SoapLists

        self.max_ids = MAX_LIST_LEADS
        self._lists = SoapLists(transport)

    def add(self, target, lead_ids, *, stop=None):
        return self._lists.add(target.name, lead_ids, stop=stop)

    def remove(self, target, lead_ids, *, stop=None):
        return self._lists.remove(target.name, lead_ids, stop=stop)


class RestLeadDeletes:
    """Delete Leads through REST."""

    def __init__(self, client, concurrency: int = 1):
        from reconcile.remote.rest.lists import MAX_IDS, RestLists

        self.max_ids = MAX_IDS
        self.concurrency = concurrency
        self._lists = RestLists(client)

    def delete(self, lead_ids, *, stop=None):
        return self._lists.delete_leads(lead_ids, stop=stop)


def memberships_for(api: str, transport, resolved, concurrency: int = 1):
    """The apply engine's Memberships for `transport`, once the names are resolved."""
    from reconcile.apply.memberships import ListTarget, Memberships
    from reconcile.remote import registry

    if not registry.get(api).can_lists:
        raise UsageError(f"the {api} transport cannot manage static list membership")
    calls = RestListCalls(transport.client) if api == "rest" else SoapListCalls(transport)
    lists = {ref: ListTarget(known.id, known.name) for ref, known in resolved.items()}
    by_id = {known.id: ListTarget(known.id, known.name) for known in resolved.values()}
    return Memberships(calls=calls, lists=lists, by_id=by_id, concurrency=concurrency)


def unresolvable(instance: str | None) -> InputError:
    return InputError(f"the lead files name static lists, and there is no list of {instance or 'the instance'} "
                      "to resolve them against: list names are looked up through Marketo's REST API; set "
                      "MARKETO_REST_ENDPOINT, MARKETO_CLIENT_ID and MARKETO_CLIENT_SECRET, or run "
                      "`reconcile lists --refresh` with them once")
