"""From lead files to the desired set: JSON Schema and semantic checks, every error at once.

jsonschema is the authority on what a valid lead file is and words every schema error, but it costs
~100 µs a lead, so it only runs on files that need it: a precompiled check of the same rules
(`_schema_clean`, no more permissive than schemas/leads.schema.json) clears the files jsonschema
would find nothing in. Validated files are cached by content (reconcile.inputs.cache), so a plan with
nothing changed parses nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from reconcile.errors import InputError, InputErrors, Location
from reconcile.inputs.leadfiles import LeadFile, SourceLines, decode, discover, parse_lead_file
from reconcile.core.model import Lead

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_RESERVED_ATTRIBUTES = {"Email": "email", "Id": "leadId", "ForeignSysPersonId": "foreignSysPersonId",
                        "ForeignSysType": "foreignSysType"}
_RESERVED_NAMES = frozenset(_RESERVED_ATTRIBUTES)


@dataclass(frozen=True)
class Desired:
    """The validated desired set and a hash of the files it came from (for stale-plan checks)."""

    leads: tuple[Lead, ...]
    files: tuple[str, ...]
    files_hash: str


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
# `_schema_clean(document)` is True only when jsonschema would report no error for `document`: it checks
# the same types, patterns (the schema's own, with jsonschema's re.search), enum and bounds, and is
# stricter where that is simpler (exact types). It was written for one version of the schema, pinned by
# its hash: a different schema turns it off (every file goes through jsonschema) until it is reviewed.
FAST_CHECK_SCHEMA_SHA256 = "bb14088671b3d1a7c8ca7bb89acd1ce5a5a1d47bc2ea4b22cf1ce5e8548c08c2"


@lru_cache(maxsize=1)
def _fast_rules() -> tuple | None:
    raw = schema_bytes()
    if hashlib.sha256(raw).hexdigest() != FAST_CHECK_SCHEMA_SHA256:
        return None
    schema = json.loads(raw)
    lead = schema["$defs"]["lead"]["properties"]
    xml_text = re.compile(schema["$defs"]["xmlText"]["pattern"])
    email = re.compile(lead["email"]["pattern"])
    name = re.compile(lead["attributes"]["propertyNames"]["pattern"])
    foreign_types = frozenset(lead["foreignSysType"]["enum"])
    return xml_text, email, name, foreign_types, lead["leadId"]["minimum"], lead["leadId"]["maximum"]


def fast_check_enabled() -> bool:
    return _fast_rules() is not None


_known_names: set[str] = set()  # attribute names that passed the name rules (there are few distinct ones)


def _schema_clean(document: Any) -> bool:
    rules = _fast_rules()
    if rules is None or type(document) is not dict or len(document) != 1 or type(document.get("leads")) is not list:
        return False
    xml_text, email_pattern, name_pattern, foreign_types, min_id, max_id = rules
    known_names = _known_names
    texts = []  # every string under an xmlText rule; checked at once (a join cannot add a character)
    add_text = texts.append
    for entry in document["leads"]:
        if type(entry) is not dict:
            return False
        for field, value in entry.items():
            if field == "attributes":
                if type(value) is not dict:
                    return False
                for name, item in value.items():
                    if name not in known_names:
                        if not (type(name) is str and len(name) >= 1 and name_pattern.search(name)
                                and xml_text.search(name)):
                            return False
                        known_names.add(name)
                    if item is not None:
                        if type(item) is not str:
                            return False
                        add_text(item)
            elif field == "email":
                if type(value) is not str or len(value) > 255 or not email_pattern.search(value):
                    return False
                add_text(value)
            elif field == "foreignSysPersonId":
                if type(value) is not str or not 1 <= len(value) <= 255:
                    return False
                add_text(value)
            elif field == "foreignSysType":
                if type(value) is not str or value not in foreign_types:
                    return False
            elif field == "leadId":
                if type(value) is not int or not min_id <= value <= max_id:
                    return False
            else:
                return False
    return xml_text.search("".join(texts)) is not None


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
    return repr(value)


def _control_message(text: str) -> str:
    match = _CONTROL.search(text)
    char = match.group() if match else "?"
    return f"contains control character U+{ord(char):04X}, which XML cannot carry"


def _schema_message(error) -> tuple[tuple, str]:
    """A one-line message for a jsonschema error, and the path it should point at."""
    path = tuple(error.absolute_path)
    value = error.instance
    keyword = error.validator
    field = path[-1] if path else None
    if "propertyNames" in error.relative_schema_path:
        name = value
        if isinstance(name, str) and _CONTROL.search(name):
            return path, f"attribute name {name!r} {_control_message(name)}"
        return path, f"attribute name {name!r} must be non-empty with no surrounding spaces"
    if keyword == "anyOf" and len(path) >= 2 and path[-2] == "attributes":
        if isinstance(value, str):
            return path, _control_message(value)
        return path, f"attribute value must be text or null, not {_describe(value)}"
    if keyword == "pattern" and field == "email":
        if isinstance(value, str) and _CONTROL.search(value):
            return path, _control_message(value)
        return path, f"{value!r} is not an email address"
    if keyword == "pattern" and isinstance(value, str) and _CONTROL.search(value):
        return path, _control_message(value)
    if keyword == "additionalProperties":
        unexpected = sorted(set(value) - set(error.schema.get("properties", {})))
        allowed = ", ".join(error.schema.get("properties", {}))
        if not unexpected:
            return path, error.message
        return path + (unexpected[0],), f"unknown field {unexpected[0]!r} (allowed: {allowed})"
    if keyword == "required":
        return path, f"missing required field {error.message.split(' ')[0]}"
    if keyword == "type":
        expected = error.validator_value
        if field == "leadId" and isinstance(value, str):
            return path, f"leadId must be a positive integer, not {value!r}"
        return path, f"must be {_article(expected)}, not {_describe(value)}"
    if keyword in ("minimum", "maximum") and field == "leadId":
        return path, f"leadId must be a positive integer below 2^31, not {value!r}"
    if keyword == "enum":
        return path, f"{value!r} is not one of {', '.join(map(str, error.validator_value))}"
    if keyword == "minLength":
        return path, "must not be empty"
    return path, error.message


def _article(expected: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer", "null": "null"}
    if isinstance(expected, list):
        return " or ".join(names.get(e, e) for e in expected)
    return names.get(expected, str(expected))


# A lead as a plain tuple: what the cache stores and Leads are built from.
# (line, leadId, email, foreignSysPersonId, foreignSysType, attributes)
LeadRecord = tuple


def check_file(lead_file: LeadFile, text: str) -> tuple[list[Lead], list[InputError]]:
    """Schema and per-lead checks for one parsed file. Leads with errors are left out."""
    records, errors = check_records(lead_file, text)
    return leads_from_records(lead_file.path, records), errors


def check_records(lead_file: LeadFile, text: str) -> tuple[list[LeadRecord], list[InputError]]:
    """check_file, giving the valid leads as LeadRecords."""
    errors: list[InputError] = []
    bad_leads: set[int] = set()
    source = SourceLines(text, lead_file.path)

    def locate(path: tuple) -> Location:
        return Location(lead_file.path, source.line(path))

    document = lead_file.document
    if not _schema_clean(document):
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
        records.append((line, lead_id, email, foreign_id, foreign_type, attributes))
    return records, errors


def _shared_strings(records: list[LeadRecord]) -> list[LeadRecord]:
    """The records with equal attribute names and values as one string object each: marshal then
    stores each once, and loading the cache entry allocates (and its leads occupy) far less."""
    shared: dict[str, str] = {}
    share = shared.setdefault
    return [(line, lead_id, email, foreign_id, foreign_type,
             {share(name, name): value if value is None else share(value, value)
              for name, value in attributes.items()})
            for line, lead_id, email, foreign_id, foreign_type, attributes in records]


def leads_from_records(path: str, records: Iterable[LeadRecord]) -> list[Lead]:
    return [Lead(location=Location(path, line), lead_id=lead_id, email=email, foreign_sys_person_id=foreign_id,
                 foreign_sys_type=foreign_type, attributes=attributes)
            for line, lead_id, email, foreign_id, foreign_type, attributes in records]


def duplicate_errors(leads: Sequence[Lead]) -> list[InputError]:
    first_seen: dict[str, Lead] = {}
    errors = []
    for lead in leads:
        earlier = first_seen.setdefault(lead.identity, lead)
        if earlier is not lead:
            errors.append(InputError(f"duplicate lead {lead.identity}: already declared at {earlier.location}",
                                     lead.location))
    return errors


def read_lead_files(leads_dir: Path) -> list[tuple[str, bytes]]:
    """(display path, raw bytes) of every lead file, in a deterministic order."""
    result = []
    for file in discover(leads_dir):
        name = file.as_posix()
        try:
            result.append((name, file.read_bytes()))
        except OSError as exc:
            raise InputError(f"cannot read file: {exc.strerror}", Location(name)) from exc
    return result


def files_hash(files: Sequence[tuple[str, bytes]]) -> str:
    """Hash of the lead files' names and bytes, for stale-plan checks."""
    return _files_hash([name for name, _ in files], [hashlib.sha256(raw).digest() for _, raw in files])


def _files_hash(names: Sequence[str], digests: Sequence[bytes]) -> str:
    digest = hashlib.sha256()
    for name, file_digest in zip(names, digests):
        digest.update(name.encode("utf-8") + b"\0" + file_digest)
    return "sha256:" + digest.hexdigest()


def _read(file: Path, name: str, stream_if: Callable[[int], bool] | None = None) -> tuple[bytes | None, bytes]:
    """(bytes, sha256 digest) of a lead file; (None, digest) if `stream_if(size)`: hashed as a stream
    (a file found in the cache need not be held in memory)."""
    try:
        with open(file, "rb") as handle:
            if stream_if is not None and stream_if(os.fstat(handle.fileno()).st_size):
                return None, hashlib.file_digest(handle, "sha256").digest()
            raw = handle.read()
            return raw, hashlib.sha256(raw).digest()
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", Location(name)) from exc


def load_desired(leads_dir: Path, cache_dir: Path | None = None) -> Desired:
    """Read, parse and validate every lead file under `leads_dir`; raise InputErrors with all problems.

    With `cache_dir`, files already seen (same bytes, schema and reconcile) are not parsed again; their
    bytes are only hashed (the hash the stale-plan check needs, and the cache key).
    """
    from reconcile.inputs.cache import InputCache
    from reconcile.core.gcpause import gc_paused

    cache = InputCache(cache_dir, schema_bytes()) if cache_dir is not None else None
    files = discover(leads_dir)
    names = [file.as_posix() for file in files]
    digests: list[bytes] = []
    contents: list[bytes | None] = []
    for file, name in zip(files, names):
        raw, file_digest = _read(file, name, stream_if=cache.wants if cache is not None else None)
        digests.append(file_digest)
        contents.append(raw)
    leads: list[Lead] = []
    errors: list[InputError] = []
    with gc_paused():
        for index, (file, name) in enumerate(zip(files, names)):
            raw = contents[index]
            if raw is None:  # big enough to cache: look it up by the digest of its bytes
                records = cache.get(digests[index])
                if records is not None:
                    try:
                        leads.extend(leads_from_records(name, records))
                        continue
                    except (TypeError, ValueError):  # not what this version writes: parse the file
                        pass
                raw, digests[index] = _read(file, name)  # the bytes parsed are the bytes hashed
            try:
                text = decode(raw, name)
                lead_file = parse_lead_file(text, name)
            except InputError as exc:
                errors.append(exc)
                continue
            records, file_errors = check_records(lead_file, text)
            leads.extend(leads_from_records(name, records))
            if file_errors:
                errors.extend(file_errors)
            elif cache is not None and cache.wants(len(raw)):
                cache.put(digests[index], _shared_strings(records))
    if cache is not None and cache.writes:
        cache.prune()
    errors.extend(duplicate_errors(leads))
    if errors:
        raise InputErrors(errors)
    return Desired(leads=tuple(leads), files=tuple(names), files_hash=_files_hash(names, digests))
