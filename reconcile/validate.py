"""From lead files to the desired set: JSON Schema and semantic checks, every error at once."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

from reconcile.errors import InputError, InputErrors, Location
from reconcile.leadfiles import LeadFile, decode, discover, line_of, parse_lead_file
from reconcile.model import Lead

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_KEYS = ("leadId", "foreignSysPersonId", "email")
_RESERVED_ATTRIBUTES = {"Email": "email", "Id": "leadId", "ForeignSysPersonId": "foreignSysPersonId",
                        "ForeignSysType": "foreignSysType"}


@dataclass(frozen=True)
class Desired:
    """The validated desired set and a hash of the files it came from (for stale-plan checks)."""

    leads: tuple[Lead, ...]
    files: tuple[str, ...]
    files_hash: str


def schema_bytes() -> bytes:
    return resources.files("reconcile").joinpath("schemas/leads.schema.json").read_bytes()


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_bytes())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


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


def check_file(lead_file: LeadFile, text: str) -> tuple[list[Lead], list[InputError]]:
    """Schema and per-lead checks for one parsed file. Leads with errors are left out."""
    errors: list[InputError] = []
    bad_leads: set[int] = set()
    lines_cache: dict[tuple, int | None] = {}

    def locate(path: tuple) -> Location:
        if path not in lines_cache:
            lines_cache[path] = line_of(text, lead_file.path, path)
        return Location(lead_file.path, lines_cache[path])

    document = lead_file.document
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
    leads = []
    for index, entry in enumerate(document.get("leads") or []):
        if index in bad_leads:
            continue
        line = lead_file.lead_lines[index] if index < len(lead_file.lead_lines) else None
        where = Location(lead_file.path, line)
        if not any(entry.get(key) is not None for key in _KEYS):
            errors.append(InputError(f"leads[{index}]: a lead needs at least one key: leadId, "
                                     "foreignSysPersonId or email", where))
            continue
        attributes = entry.get("attributes") or {}
        reserved = [name for name in attributes if name in _RESERVED_ATTRIBUTES]
        if reserved:
            name = reserved[0]
            errors.append(InputError(f"leads[{index}].attributes.{name}: use the lead's "
                                     f"{_RESERVED_ATTRIBUTES[name]!r} field, not an attribute named {name!r}",
                                     locate(("leads", index, "attributes", name))))
            continue
        if entry.get("foreignSysType") is not None and entry.get("foreignSysPersonId") is None:
            errors.append(InputError(f"leads[{index}].foreignSysType: foreignSysType needs a "
                                     "foreignSysPersonId", locate(("leads", index, "foreignSysType"))))
            continue
        leads.append(Lead(location=where, lead_id=entry.get("leadId"), email=entry.get("email"),
                          foreign_sys_person_id=entry.get("foreignSysPersonId"),
                          foreign_sys_type=entry.get("foreignSysType"), attributes=attributes))
    return leads, errors


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
    digest = hashlib.sha256()
    for name, raw in files:
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(raw).digest())
    return "sha256:" + digest.hexdigest()


def load_desired(leads_dir: Path) -> Desired:
    """Read, parse and validate every lead file under `leads_dir`; raise InputErrors with all problems."""
    files = read_lead_files(leads_dir)
    leads: list[Lead] = []
    errors: list[InputError] = []
    for name, raw in files:
        try:
            text = decode(raw, name)
            lead_file = parse_lead_file(text, name)
        except InputError as exc:
            errors.append(exc)
            continue
        file_leads, file_errors = check_file(lead_file, text)
        leads.extend(file_leads)
        errors.extend(file_errors)
    errors.extend(duplicate_errors(leads))
    if errors:
        raise InputErrors(errors)
    return Desired(leads=tuple(leads), files=tuple(name for name, _ in files), files_hash=files_hash(files))
