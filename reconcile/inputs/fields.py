"""The instance's lead fields (from Marketo's Describe), cached locally, and the checks they allow.

Describe lists every lead field with its SOAP name (the name lead files use, `FirstName`), its REST
name (`firstName`), whether it is read-only, its data type and its length. The answer is kept as
Marketo gave it, one file per instance (its host), in the workspace's folder of the user's cache
directory (reconcile.inputs.cache.workspace_dir), never in the repository; `reconcile fields
--refresh` renews it. With one kept, `validate` and `plan` refuse unknown
and read-only attribute names and values that cannot be of the field's type, before anything is sent.

Facts relied on (../shared/marketo-rest-facts.md, "Describe"): entries are `{"id", "displayName",
"dataType", "length", "rest": {"name", "readOnly"}, "soap": {"name", "readOnly"}}`; `rest` / `soap`
are present only where the field is usable in that API.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from reconcile.core.clock import iso_utc, utc_now
from reconcile.core.model import Lead
from reconcile.errors import InputError, InputErrors, Location, UsageError

CACHE_FORMAT = 1
_INSTANCE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # the lead-file (SOAP) name; the REST name for a field only REST knows
    rest_name: str | None
    read_only: bool
    data_type: str
    length: int | None
    display_name: str = ""


# Describe is server text that reaches the terminal: a name with control characters or spaces is
# no field a lead file could use, and is left out.
_FIELD_NAME = re.compile(r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]{1,255}")
_DATA_TYPE = re.compile(r"[a-z_]{1,40}")


def _named(part: Any) -> Mapping[str, Any] | None:
    if isinstance(part, Mapping) and isinstance(part.get("name"), str) and _FIELD_NAME.fullmatch(part["name"]):
        return part
    return None


def _spec(entry: Mapping[str, Any]) -> FieldSpec | None:
    soap, rest = _named(entry.get("soap")), _named(entry.get("rest"))
    if soap is None and rest is None:
        return None
    length = entry.get("length")
    data_type = str(entry.get("dataType") or "").lower()
    return FieldSpec(name=(soap or rest)["name"], rest_name=rest["name"] if rest else None,
                     read_only=bool((soap or {}).get("readOnly")) or bool((rest or {}).get("readOnly")),
                     data_type=data_type if _DATA_TYPE.fullmatch(data_type) else "",
                     length=length if isinstance(length, int) and not isinstance(length, bool) and length > 0
                     else None,
                     display_name=re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ",
                                         str(entry.get("displayName") or ""))[:200])


class FieldCatalog:
    """The lead fields of one instance, by lead-file name."""

    def __init__(self, entries: Iterable[Mapping[str, Any]], instance: str = "", source: str = "",
                 fetched_at: str = "", fingerprint: str = ""):
        self.instance = instance
        self.source = source
        self.fetched_at = fetched_at
        self.fingerprint = fingerprint  # sha256 of the Describe answer: part of a cached plan's key
        self.fields: dict[str, FieldSpec] = {}
        for entry in entries:
            spec = _spec(entry) if isinstance(entry, Mapping) else None
            if spec is not None:
                self.fields.setdefault(spec.name, spec)
        self._by_folded = {name.lower(): name for name in self.fields}
        self._by_rest = {spec.rest_name: name for name, spec in self.fields.items() if spec.rest_name}

    def __len__(self) -> int:
        return len(self.fields)

    def rest_names(self) -> dict[str, str]:
        """Lead-file name → REST name, for every field the REST API can write."""
        return {name: spec.rest_name for name, spec in self.fields.items() if spec.rest_name}

    def suggestion(self, name: str) -> str | None:
        """The field a misspelt or REST-style name most likely means: `firstName` → `FirstName`."""
        if name in self._by_rest:
            return self._by_rest[name]
        folded = name.lower()
        if folded in self._by_folded:
            return self._by_folded[folded]
        by_folded_rest = {rest.lower(): soap for rest, soap in self._by_rest.items()}
        if folded in by_folded_rest:
            return by_folded_rest[folded]
        close = difflib.get_close_matches(name, list(self.fields), n=1, cutoff=0.8)
        return close[0] if close else None

    def resolve_rest_name(self, name: str, what: str) -> str:
        """The REST name of a field given by either name (for --foreign-id-field)."""
        spec = self.fields.get(name) or self.fields.get(self._by_rest.get(name, ""))
        if spec is None or spec.rest_name is None:
            hint = self.suggestion(name)
            raise UsageError(f"{what} {name!r} is not a lead field of {self.instance or 'this instance'} usable "
                             f"through REST{f'; did you mean {hint!r}' if hint else ''} (see `reconcile fields`)")
        return spec.rest_name

    # -- checks -------------------------------------------------------------------------------------

    def name_problem(self, name: str) -> str | None:
        spec = self.fields.get(name)
        if spec is None:
            hint = self.suggestion(name)
            return (f"{name!r} is not a lead field of {self.instance or 'this Marketo instance'}"
                    + (f"; did you mean {hint!r}?" if hint else "") + self._cached_note())
        if spec.read_only:
            return f"{name!r} is read-only in Marketo: it cannot be set" + self._cached_note()
        return None

    def value_problem(self, name: str, value: str | None) -> str | None:
        spec = self.fields.get(name)
        if spec is None or value is None:
            return None  # null clears the field, whatever its type
        check = _VALUE_CHECKS.get(spec.data_type)
        if check is not None and not check(value):
            return f"{value!r} is not a valid {spec.data_type} for {name}"
        if spec.length is not None and spec.data_type in _LENGTH_TYPES and len(value) > spec.length:
            return f"value of {name} is {len(value)} characters long; the field holds at most {spec.length}"
        return None

    def suspect_values(self, name: str, values: Iterable[str | None]) -> list[str]:
        """The values that may fail `value_problem`, found in bulk (the common case finds none)."""
        spec = self.fields.get(name)
        if spec is None:
            return []
        check = _VALUE_CHECKS.get(spec.data_type)
        limit = spec.length if spec.length is not None and spec.data_type in _LENGTH_TYPES else None
        if check is None and limit is None:
            return []
        present = [value for value in values if value is not None]
        if check is not None:
            return [value for value in present if not check(value) or (limit is not None and len(value) > limit)]
        return [value for value in present if len(value) > limit]

    def _cached_note(self) -> str:
        return f" (fields as described by Marketo in {self.source}; `reconcile fields --refresh` renews it)" \
            if self.source else ""


_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
_BOOLEANS = frozenset({"true", "false", "1", "0"})
_VALUE_CHECKS: dict[str, Callable[[str], bool]] = {
    "integer": lambda v: _INTEGER.fullmatch(v) is not None,
    "float": lambda v: _NUMBER.fullmatch(v) is not None,
    "currency": lambda v: _NUMBER.fullmatch(v) is not None,
    "percent": lambda v: _NUMBER.fullmatch(v) is not None,
    "score": lambda v: _INTEGER.fullmatch(v) is not None,
    "boolean": lambda v: v.lower() in _BOOLEANS,
    "date": lambda v: _DATE.fullmatch(v) is not None,
    "datetime": lambda v: _DATETIME.fullmatch(v) is not None,
    "email": lambda v: v.isascii() and "@" in v,  # Marketo's REST API takes ASCII emails only
}
_LENGTH_TYPES = frozenset({"string", "email", "phone", "url", "text", "textarea"})


def check_leads(leads: Sequence[Lead], catalog: FieldCatalog) -> None:
    """Raise InputErrors for every attribute the instance does not have, cannot set, or cannot hold."""
    # Each distinct value is checked once: a plan of 100k leads repeats most of its values, and the
    # leads are walked again only to place the errors found.
    names: set[str] = set()
    collect = names.update
    for lead in leads:
        collect(lead.attributes)
    values = {name: {lead.attributes.get(name) for lead in leads} for name in names}
    problems: dict[tuple[str, str | None], str] = {}
    bad_names: dict[str, str] = {}
    for name, seen in values.items():
        problem = catalog.name_problem(name)
        if problem is not None:
            bad_names[name] = problem
        else:
            for value in catalog.suspect_values(name, seen):
                problem = catalog.value_problem(name, value)
                if problem is not None:
                    problems[(name, value)] = problem
    if not bad_names and not problems:
        return
    errors: list[tuple[Lead, str, str]] = []
    for lead in leads:
        for name, value in lead.attributes.items():
            problem = bad_names.get(name) or problems.get((name, value))
            if problem is not None:
                errors.append((lead, name, problem))
    raise InputErrors(_located(errors))


def _located(errors: list[tuple[Lead, str, str]]) -> list[InputError]:
    """Point each error at the attribute's own line (files are read again only when there are errors)."""
    finders: dict[str, Callable[[int | None, str], tuple[int | None, str]]] = {}
    located = []
    for lead, name, problem in errors:
        path = lead.location.file
        if path not in finders:
            finders[path] = _attribute_finder(path)
        line, where = finders[path](lead.location.line, name)
        located.append(InputError(f"{where}: {problem}", Location(path, line or lead.location.line)))
    return located


def _attribute_finder(path: str) -> Callable[[int | None, str], tuple[int | None, str]]:
    from reconcile.inputs.files import decode
    from reconcile.inputs.leadfiles import compose

    try:
        root = compose(decode(Path(path).read_bytes(), path), path)
        items = next(value.value for key, value in root.value if key.value == "leads")
    except Exception:  # the file changed or cannot be read again: the lead's own line will do
        items = []
    by_line = {item.start_mark.line + 1: (index, item) for index, item in enumerate(items)}

    def find(lead_line: int | None, name: str) -> tuple[int | None, str]:
        index, item = by_line.get(lead_line, (None, None))
        if item is None:
            return None, f"attributes.{name}"
        for key, value in getattr(item, "value", []):
            if key.value == "attributes":
                for attr_key, _ in getattr(value, "value", []):
                    if attr_key.value == name:
                        return attr_key.start_mark.line + 1, f"leads[{index}].attributes.{name}"
        return None, f"leads[{index}].attributes.{name}"

    return find


# -- the instance's Describe, kept in the workspace's folder of the user's cache directory ---------


def cache_file(workspace: Path, instance: str) -> Path:
    safe = _INSTANCE_NAME.sub("_", instance.lower()) or "instance"
    return Path(workspace) / "describe" / f"{safe}.json"


def save_catalog(workspace: Path, instance: str, entries: list[dict[str, Any]],
                 now: Callable[[], Any] = utc_now) -> Path:
    from reconcile.store.fs import write_atomic

    path = cache_file(workspace, instance)
    document = {"format": CACHE_FORMAT, "instance": instance, "fetched_at": iso_utc(now()), "fields": entries}
    write_atomic(path, (json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return path


def catalog_file(workspace: Path, instance: str | None = None) -> Path | None:
    """The Describe answer kept for `instance`; without one, the only one kept. None: none kept."""
    if instance:
        return cache_file(workspace, instance)
    directory = Path(workspace) / "describe"
    found = sorted(directory.glob("*.json")) if directory.is_dir() else []
    return found[0] if len(found) == 1 else None


def load_catalog(workspace: Path, instance: str | None = None) -> FieldCatalog | None:
    """The kept fields of `instance` (see `catalog_file`). None: none kept."""
    path = catalog_file(workspace, instance)
    if path is None:
        return None
    try:
        raw = path.read_bytes()
        document = json.loads(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the kept Describe answer: {exc}; run `reconcile fields --refresh`",
                         Location(str(path))) from None
    if not isinstance(document, dict) or document.get("format") != CACHE_FORMAT \
            or not isinstance(document.get("fields"), list):
        raise InputError("not a Describe answer this version of reconcile writes; run "
                         "`reconcile fields --refresh`", Location(str(path)))
    return FieldCatalog(document["fields"], instance=str(document.get("instance") or ""), source=str(path),
                        fetched_at=str(document.get("fetched_at") or ""),
                        fingerprint=hashlib.sha256(raw).hexdigest())
