"""The instance's static lists, kept beside its Describe answer in the user's cache directory, and the lead files' list names
resolved against them.

Lead files name a list exactly as Marketo does (case-sensitive), or by ID as `id:1021`. A name that
matches no list, or several, is an error at the first lead that gives it, with the IDs it matches.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from reconcile.core.clock import iso_utc, utc_now
from reconcile.core.model import Lead
from reconcile.errors import InputError, InputErrors

CACHE_FORMAT = 1
_INSTANCE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_BY_ID = re.compile(r"id:([1-9][0-9]{0,9})")


@dataclass(frozen=True)
class KnownList:
    id: int
    name: str


def cache_file(workspace: Path, instance: str) -> Path:
    """In the workspace's folder of the user's cache directory, beside the Describe answers (not a
    .json: that directory's *.json are field catalogs)."""
    safe = _INSTANCE_NAME.sub("_", instance.lower()) or "instance"
    return Path(workspace) / "describe" / f"{safe}.lists"


def save_lists(workspace: Path, instance: str, lists: Iterable[KnownList],
               now: Callable[[], Any] = utc_now) -> Path:
    from reconcile.store.fs import write_atomic

    path = cache_file(workspace, instance)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": CACHE_FORMAT, "instance": instance, "fetched_at": iso_utc(now()),
                "lists": [{"id": known.id, "name": known.name} for known in sorted(lists, key=lambda k: k.id)]}
    write_atomic(path, (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def cached_path(workspace: Path, instance: str | None) -> Path | None:
    """The cache file of `instance`, or (None) of the only instance cached."""
    if instance:
        return cache_file(workspace, instance)
    directory = Path(workspace) / "describe"
    found = sorted(directory.glob("*.lists")) if directory.is_dir() else []
    return found[0] if len(found) == 1 else None


def load_lists(workspace: Path, instance: str | None) -> list[KnownList] | None:
    """The cached lists of `instance` (None: of the only instance cached); None when there is no
    usable cache (it is fetched again)."""
    path = cached_path(workspace, instance)
    if path is None:
        return None
    try:
        document = json.loads(path.read_bytes())
        if document.get("format") != CACHE_FORMAT:
            return None
        return [KnownList(int(item["id"]), str(item["name"])) for item in document["lists"]
                if type(item.get("id")) is int and type(item.get("name")) is str]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def declared_refs(leads: Sequence[Lead]) -> dict[str, Lead]:
    """Each list name the lead files give, with the first lead that gives it."""
    first: dict[str, Lead] = {}
    for lead in leads:
        for ref in lead.lists:
            first.setdefault(ref, lead)
    return first


def unresolved(refs: Iterable[str], lists: Sequence[KnownList]) -> list[str]:
    """The names that match no list, or several (what a fresher catalog might settle)."""
    by_name: dict[str, int] = {}
    ids = {known.id for known in lists}
    for known in lists:
        by_name[known.name] = by_name.get(known.name, 0) + 1
    missing = []
    for ref in refs:
        match = _BY_ID.fullmatch(ref)
        if (int(match.group(1)) not in ids) if match else by_name.get(ref) != 1:
            missing.append(ref)
    return missing


def resolve(first: Mapping[str, Lead], lists: Sequence[KnownList], instance: str) -> dict[str, KnownList]:
    """Each name to its one list; InputErrors (exit 3) naming every name that matches none or several."""
    by_name: dict[str, list[KnownList]] = {}
    by_id = {known.id: known for known in lists}
    for known in lists:
        by_name.setdefault(known.name, []).append(known)
    resolved: dict[str, KnownList] = {}
    errors = []
    for ref, lead in first.items():
        match = _BY_ID.fullmatch(ref)
        found = [by_id[int(match.group(1))]] if match and int(match.group(1)) in by_id else \
            [] if match else by_name.get(ref, [])
        if len(found) == 1:
            resolved[ref] = found[0]
            continue
        if not found:
            message = f"lists: {ref!r} matches no static list of {instance} (names match exactly, case and all)"
        else:
            ids = ", ".join(f"id:{known.id}" for known in found)
            message = (f"lists: {ref!r} matches {len(found)} static lists of {instance} ({ids}); "
                       "name the one you mean by its ID")
        errors.append(InputError(message + "; `reconcile lists --refresh` shows them", lead.location))
    if errors:
        raise InputErrors(errors)
    return resolved
