"""From lead files to the desired set: JSON Schema and semantic checks, every error at once.

jsonschema is the authority on what a valid lead file is and words every schema error, but it is
slow on large files, so it only runs on files that need it: a precompiled check of the same rules
(`SchemaCheck`, no more permissive than schemas/leads.schema.json) clears the files jsonschema
would find nothing in. Validated files are cached by content (reconcile.inputs.cache), so a plan with
nothing changed parses nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

from reconcile.core.callsize import MAX_RECORD_BYTES, record_bytes, too_big_message
from reconcile.core.model import Lead
from reconcile.errors import InputError, InputErrors, Location
from reconcile.inputs.cache import Cache
from reconcile.inputs.files import DEFAULT_MAX_FILE_BYTES, decode, discover, files_hash_of, read_lead_file
from reconcile.inputs.leadfiles import LeadFile, parse_lead_file
from reconcile.inputs.lifecycle import is_true, lifecycle_error
from reconcile.inputs.sourcelines import SourceLines

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Keys (email, foreign ID) and attribute names hold no control character at all, not even a line break.
_KEY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_KEY_FIELDS = frozenset({"email", "foreignSysPersonId"})
_SHOWN_CHARS = 60
_RESERVED_ATTRIBUTES = {"Email": "email", "Id": "leadId", "ForeignSysPersonId": "foreignSysPersonId",
                        "ForeignSysType": "foreignSysType"}
_RESERVED_NAMES = frozenset(_RESERVED_ATTRIBUTES)


@dataclass(frozen=True)
class Desired:
    """The validated desired set and a hash of the files it came from (for stale-plan checks)."""

    leads: tuple[Lead, ...]
    files: tuple[str, ...]
    files_hash: str
    file_digests: tuple[str, ...] = ()  # sha256 of each file's bytes (hex), in the order of `files`


@lru_cache(maxsize=1)
def schema_bytes() -> bytes:
    return resources.files("reconcile").joinpath("schemas/leads.schema.json").read_bytes()


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# --- the precompiled check ---------------------------------------------------------------------------
# `SchemaCheck.clean(document)` is True only when jsonschema would report no error for `document`: it
# checks the same types, patterns (the schema's own, each matched against the whole text), enum and
# bounds, and is stricter where that is simpler (exact types). It was written for one version of the
# schema, pinned by its hash: a different schema turns it off (every file goes through jsonschema) until
# it is reviewed.
FAST_CHECK_SCHEMA_SHA256 = "0a17aa766269dd05e3c88760f0d7161898683eb7fe53e4e3d10f15ce47561c14"


@dataclass(frozen=True)
class FastRules:
    """The schema's rules, compiled: patterns, the foreign types and the bounds of every field."""

    xml_text: re.Pattern
    key_text: re.Pattern
    email: re.Pattern
    name: re.Pattern
    foreign_types: frozenset
    min_id: int
    max_id: int
    email_max: int
    foreign_id_min: int
    foreign_id_max: int
    name_min: int
    list_name_max: int


@lru_cache(maxsize=1)
def _fast_rules() -> FastRules | None:
    raw = schema_bytes()
    if hashlib.sha256(raw).hexdigest() != FAST_CHECK_SCHEMA_SHA256:
        return None
    schema = json.loads(raw)
    defs = schema["$defs"]
    lead = defs["lead"]["properties"]
    names = lead["attributes"]["propertyNames"]
    return FastRules(xml_text=re.compile(defs["xmlText"]["pattern"]), key_text=re.compile(defs["keyText"]["pattern"]),
                     email=re.compile(lead["email"]["pattern"]), name=re.compile(names["pattern"]),
                     foreign_types=frozenset(lead["foreignSysType"]["enum"]),
                     min_id=lead["leadId"]["minimum"], max_id=lead["leadId"]["maximum"],
                     email_max=lead["email"]["maxLength"],
                     foreign_id_min=lead["foreignSysPersonId"]["minLength"],
                     foreign_id_max=lead["foreignSysPersonId"]["maxLength"], name_min=names["minLength"],
                     list_name_max=lead["lists"]["items"]["maxLength"])


def fast_check_enabled() -> bool:
    return _fast_rules() is not None


class SchemaCheck:
    """The precompiled check, remembering the attribute names and list names it has cleared (there are
    few distinct ones) for as long as it lives: one load of the lead files."""

    def __init__(self, rules: FastRules | None = None):
        self.rules = rules if rules is not None else _fast_rules()
        self.known_names: set[str] = set()
        self.known_lists: set[str] = set()

    def clean(self, document: Any) -> bool:
        rules = self.rules
        if rules is None or type(document) is not dict or len(document) != 1 \
                or type(document.get("leads")) is not list:
            return False
        texts: list[str] = []  # every string under an xmlText rule; checked at once (a join adds no character)
        for entry in document["leads"]:
            if type(entry) is not dict or not self._lead_clean(entry, rules, texts):
                return False
        return rules.xml_text.fullmatch("".join(texts)) is not None

    def _lead_clean(self, entry: dict, rules: FastRules, texts: list[str]) -> bool:
        for field, value in entry.items():
            if field == "attributes":
                if type(value) is not dict or not self._attributes_clean(value, rules, texts):
                    return False
            elif field == "email":
                if type(value) is not str or len(value) > rules.email_max or not rules.email.fullmatch(value) \
                        or not rules.key_text.fullmatch(value):
                    return False
            elif field == "foreignSysPersonId":
                if type(value) is not str or not rules.foreign_id_min <= len(value) <= rules.foreign_id_max \
                        or not rules.key_text.fullmatch(value):
                    return False
            elif field == "foreignSysType":
                if type(value) is not str or value not in rules.foreign_types:
                    return False
            elif field == "leadId":
                if type(value) is not int or not rules.min_id <= value <= rules.max_id:
                    return False
            elif field == "lists":
                if not self._lists_clean(value, rules):
                    return False
            elif field == "deleted":
                if not is_true(value):
                    return False
            else:
                return False
        return True

    def _lists_clean(self, lists: Any, rules: FastRules) -> bool:
        """A list of distinct names, each a name as an attribute name is (the schema's same pattern)."""
        if type(lists) is not list or len(set(map(str, lists))) != len(lists):
            return False
        known = self.known_lists
        for name in lists:
            if type(name) is not str:
                return False
            if name not in known:
                if not (1 <= len(name) <= rules.list_name_max and rules.name.fullmatch(name)
                        and rules.key_text.fullmatch(name)):
                    return False
                known.add(name)
        return True

    def _attributes_clean(self, attributes: dict, rules: FastRules, texts: list[str]) -> bool:
        known_names = self.known_names
        for name, item in attributes.items():
            if name not in known_names:
                if not (type(name) is str and len(name) >= rules.name_min and rules.name.fullmatch(name)
                        and rules.key_text.fullmatch(name)):
                    return False
                known_names.add(name)
            if item is not None:
                if type(item) is not str:
                    return False
                texts.append(item)
        return True


def json_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return text or "(document)"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _shown(value)


def _shown(value: Any) -> str:
    """repr(value), cut short: a message stays one readable line whatever the file holds."""
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + f"… ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return "a number of more than 60 digits"
    return repr(value)


def _control_message(text: str, pattern: re.Pattern = _CONTROL) -> str:
    match = pattern.search(text)
    char = match.group() if match else "?"
    if pattern is _KEY_CONTROL:
        return f"contains control character U+{ord(char):04X}; keys and names cannot hold control characters"
    return f"contains control character U+{ord(char):04X}, which XML cannot carry"


def _schema_message(error) -> tuple[tuple, str]:
    """A one-line message for a jsonschema error, and the path it should point at."""
    path = tuple(error.absolute_path)
    value = error.instance
    keyword = error.validator
    field = path[-1] if path else None
    if "propertyNames" in error.relative_schema_path:
        name = value
        if isinstance(name, str) and _KEY_CONTROL.search(name):
            return path, f"attribute name {_shown(name)} {_control_message(name, _KEY_CONTROL)}"
        return path, f"attribute name {_shown(name)} must be non-empty with no surrounding spaces"
    if keyword == "anyOf" and len(path) >= 2 and path[-2] == "attributes":
        if isinstance(value, str):
            return path, _control_message(value)
        return path, f"attribute value must be text or null, not {_describe(value)}"
    if keyword == "pattern" and isinstance(value, str) and field in _KEY_FIELDS and _KEY_CONTROL.search(value):
        return path, _control_message(value, _KEY_CONTROL)
    if keyword == "pattern" and field == "email":
        return path, f"{_shown(value)} is not an email address"
    if keyword == "pattern" and isinstance(value, str) and _CONTROL.search(value):
        return path, _control_message(value)
    if keyword == "additionalProperties":
        unexpected = sorted(set(value) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {}))
        if not unexpected:
            return path, error.message
        return path + (unexpected[0],), f"unknown field {_shown(unexpected[0])} (allowed: {allowed})"
    if not path and (isinstance(value, list) or (keyword == "required" and isinstance(value, dict)
                                                 and not {"leadId", *_KEY_FIELDS}.isdisjoint(value))):
        shape = "a bare list" if isinstance(value, list) else "a lead by itself"
        return path, (f"a lead file holds its leads under `leads:`, not {shape}: put `leads:` on the first "
                      "line and the leads under it as a list, each starting with '- ' (see leads/ for examples)")
    if keyword == "required":
        return path, f"missing required field {error.message.split(' ')[0]}"
    if keyword == "type":
        expected = error.validator_value
        if field == "leadId" and isinstance(value, str):
            if value.isascii() and value.isdigit():
                return path, f"leadId must be a number, not the text {_shown(value)}; write it without quotes"
            return path, f"leadId must be a positive integer, not {_shown(value)}"
        return path, f"must be {_article(expected)}, not {_describe(value)}"
    if keyword in ("minimum", "maximum") and field == "leadId":
        return path, f"leadId must be a positive integer below 2^31, not {_shown(value)}"
    if keyword == "enum":
        return path, f"{_shown(value)} is not one of {', '.join(map(str, error.validator_value))}"
    if keyword == "minLength":
        return path, "must not be empty"
    if keyword == "maxLength":
        return path, f"is {len(value)} characters long; at most {error.validator_value} are allowed"
    return path, error.message


def _article(expected: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer", "null": "null"}
    if isinstance(expected, list):
        return " or ".join(names.get(e, e) for e in expected)
    return names.get(expected, str(expected))


# A lead as a plain tuple: what the cache stores and Leads are built from.
# (line, leadId, email, foreignSysPersonId, foreignSysType, attributes, lists, deleted)
LeadRecord = tuple


def check_file(lead_file: LeadFile, text: str) -> tuple[list[Lead], list[InputError]]:
    """Schema and per-lead checks for one parsed file. Leads with errors are left out."""
    records, errors = check_records(lead_file, text, SchemaCheck())
    return leads_from_records(lead_file.path, records), errors


def check_records(lead_file: LeadFile, text: str, schema_check: SchemaCheck
                  ) -> tuple[list[LeadRecord], list[InputError]]:
    """check_file, giving the valid leads as LeadRecords."""
    errors: list[InputError] = []
    bad_leads: set[int] = set()
    source = SourceLines(text, lead_file.path)

    def locate(path: tuple) -> Location:
        return Location(lead_file.path, source.line(path))

    document = lead_file.document
    if not schema_check.clean(document):
        seen: set[tuple[tuple, str]] = set()
        for error in _validator().iter_errors(document):
            path, message = _schema_message(error)
            if (path, message) in seen:
                continue
            seen.add((path, message))
            errors.append(InputError(f"{json_path(path)}: {message}", locate(path)))
            if len(path) >= 2 and path[0] == "leads" and isinstance(path[1], int):
                bad_leads.add(path[1])
            elif len(path) < 2:
                return [], errors  # the document's shape is wrong: nothing else is meaningful
    records: list[LeadRecord] = []
    lead_lines = lead_file.lead_lines
    for index, entry in enumerate(document.get("leads") or []):
        if index in bad_leads:
            continue
        lead_id = entry.get("leadId")
        email = entry.get("email")
        foreign_id = entry.get("foreignSysPersonId")
        foreign_type = entry.get("foreignSysType")
        line = lead_lines[index] if index < len(lead_lines) else None
        if lead_id is None and foreign_id is None and email is None:
            errors.append(InputError(f"leads[{index}]: a lead needs at least one key: leadId, "
                                     "foreignSysPersonId or email", Location(lead_file.path, line)))
            continue
        problem = lifecycle_error(entry, index, locate, _shown)
        if problem is not None:
            errors.append(problem)
            continue
        attributes = entry.get("attributes") or {}
        if not _RESERVED_NAMES.isdisjoint(attributes):
            name = next(name for name in attributes if name in _RESERVED_ATTRIBUTES)
            errors.append(InputError(f"leads[{index}].attributes.{name}: use the lead's "
                                     f"{_RESERVED_ATTRIBUTES[name]!r} field, not an attribute named {name!r}",
                                     locate(("leads", index, "attributes", name))))
            continue
        if foreign_type is not None and foreign_id is None:
            errors.append(InputError(f"leads[{index}].foreignSysType: foreignSysType needs a "
                                     "foreignSysPersonId", locate(("leads", index, "foreignSysType"))))
            continue
        size = record_bytes(lead_id, email, foreign_id, attributes)
        if size > MAX_RECORD_BYTES:
            path, message = too_big_message(index, size, attributes)
            errors.append(InputError(f"{json_path(path)}: {message}", Location(lead_file.path, line)))
            continue
        records.append((line, lead_id, email, foreign_id, foreign_type, attributes, tuple(entry.get("lists") or ()),
                        is_true(entry.get("deleted"))))
    return records, errors


def _shared_strings(records: Sequence[LeadRecord], shared: dict[str, str]) -> list[LeadRecord]:
    """The records with equal attribute names and values as one string object each (`shared` holds
    them; one dict for all of a plan's files): a million leads repeat a few thousand names and values,
    so they occupy far less, and marshal stores each once in a cache entry (which loads faster)."""
    share = shared.setdefault
    return [(line, lead_id, email, foreign_id, foreign_type,
             {share(name, name): value if value is None else share(value, value)
              for name, value in attributes.items()},
             tuple(share(ref, ref) for ref in lists) if lists else (), deleted)
            for line, lead_id, email, foreign_id, foreign_type, attributes, lists, deleted in records]


def leads_from_records(path: str, records: Iterable[LeadRecord]) -> list[Lead]:
    return [Lead(Location(path, line), lead_id, email, foreign_id, foreign_type, attributes, lists, deleted)
            for line, lead_id, email, foreign_id, foreign_type, attributes, lists, deleted in records]


def duplicate_errors(leads: Sequence[Lead]) -> list[InputError]:
    first_seen: dict[str, Lead] = {}
    errors = []
    for lead in leads:
        earlier = first_seen.setdefault(lead.identity, lead)
        if earlier is not lead:
            errors.append(InputError(f"duplicate lead {lead.identity}: already declared at {earlier.location}",
                                     lead.location))
    return errors


def read_lead_files(leads_dir: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> list[tuple[str, bytes]]:
    """(display path, raw bytes) of every lead file, in a deterministic order."""
    result = []
    for file in discover(leads_dir):
        name = file.as_posix()
        raw, _digest = read_lead_file(file, name, max_file_bytes)
        assert raw is not None
        result.append((name, raw))
    return result


def files_hash(files: Sequence[tuple[str, bytes]]) -> str:
    """Hash of the lead files' names and bytes, for stale-plan checks."""
    return files_hash_of([name for name, _ in files], [hashlib.sha256(raw).digest() for _, raw in files])


def lead_cache(cache_dir: Path | None) -> Cache | None:
    """The cache of parsed-and-validated lead files in `cache_dir` (None: no caching)."""
    return Cache(cache_dir / "leads", schema_bytes()) if cache_dir is not None else None


def load_desired(leads_dir: Path, cache_dir: Path | None = None,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Desired:
    """Read, parse and validate every lead file under `leads_dir`; raise InputErrors with all problems.

    With `cache_dir`, files already seen (same bytes, schema and reconcile) are not parsed again; their
    bytes are only hashed (the hash the stale-plan check needs, and the cache key). A file that is not
    a regular file, or is over `max_file_bytes`, is refused before it is read.
    """
    cache = lead_cache(cache_dir)
    files = discover(leads_dir)
    names = [file.as_posix() for file in files]
    digests: list[bytes] = []
    contents: list[bytes | None] = []
    for file, name in zip(files, names):
        raw, file_digest = read_lead_file(file, name, max_file_bytes,
                                          hash_only_if=cache.wants if cache is not None else None)
        digests.append(file_digest)
        contents.append(raw)
    leads: list[Lead] = []
    errors: list[InputError] = []
    schema_check, shared = SchemaCheck(), {}
    for index, (file, name) in enumerate(zip(files, names)):
        records, file_errors, digests[index] = file_records(file, name, max_file_bytes, cache, schema_check,
                                                            contents[index], digests[index], shared)
        contents[index] = None
        leads.extend(leads_from_records(name, records))
        errors.extend(file_errors)
    errors.extend(duplicate_errors(leads))
    if errors:
        raise InputErrors(errors)
    return Desired(leads=tuple(leads), files=tuple(names), files_hash=files_hash_of(names, digests),
                   file_digests=tuple(digest.hex() for digest in digests))


def file_records(file: Path, name: str, max_file_bytes: int, cache: Cache | None, schema_check: SchemaCheck,
                 raw: bytes | None = None, file_digest: bytes | None = None, shared: dict[str, str] | None = None
                 ) -> tuple[Sequence[LeadRecord], list[InputError], bytes]:
    """One lead file's valid leads as LeadRecords, its errors, and the sha256 of the bytes they came
    from. `raw` None with `file_digest`: the file was only hashed (big enough to cache); it is looked
    up by that digest and read only on a miss. Both None: read it. `shared`: the attribute names and
    values of the files read before (see _shared_strings)."""
    if raw is None and file_digest is not None and cache is not None:
        records = cache.get(file_digest)
        if records is not None and _records_shaped(records):
            return records, [], file_digest
    if raw is None:
        raw, file_digest = read_lead_file(file, name, max_file_bytes)  # the bytes parsed are hashed
    assert file_digest is not None
    try:
        text = decode(raw, name)
        lead_file = parse_lead_file(text, name)
    except InputError as exc:
        return [], [exc], file_digest
    records, errors = check_records(lead_file, text, schema_check)
    del lead_file, text  # the parsed document: its leads' values are in `records`, shared below
    shared = {} if shared is None else shared  # alive until the entry is written: marshal then marks the same refs
    records = _shared_strings(records, shared)
    if not errors and cache is not None and cache.wants(len(raw)):
        cache.put(file_digest, records)
    return records, errors, file_digest


def _records_shaped(records: Sequence[Any]) -> bool:
    """Whether a cache entry holds LeadRecords (an entry of another version is parsed again)."""
    return all(type(record) is tuple and len(record) == 8 for record in records)


def summary_line(desired: Desired) -> str:
    """What `validate` says on success, e.g. "1 lead in 1 file is valid." """
    leads, files = len(desired.leads), len(desired.files)
    return (f"{leads} {'lead' if leads == 1 else 'leads'} in {files} {'file' if files == 1 else 'files'} "
            f"{'is' if leads == 1 else 'are'} valid.")
