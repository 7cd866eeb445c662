"""The state file: what reconcile last applied to Marketo, committed to git beside the lead files.

Reading is strict (a corrupt or unknown state is an error, never silently replaced); writing is
atomic (temp file, fsync, rename) so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any, Mapping

from reconcile.errors import Location, StateError
from reconcile.store.fs import write_atomic
from reconcile.core.model import FOREIGN_SYS_TYPES, State, StateLead

FORMAT_VERSION = 1
_LEAD_FIELDS = {"leadId", "email", "foreignSysPersonId", "foreignSysType", "attributes", "syncedAt"}


def new_state() -> State:
    return State(lineage=str(uuid.uuid4()), serial=0, leads={})


def load_state(path: Path) -> State:
    """The state at `path`; a missing file is an empty state with a fresh lineage."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return new_state()
    except OSError as exc:
        raise StateError(f"cannot read state file: {exc.strerror}", Location(str(path))) from exc
    return parse_state(raw, str(path))


def parse_state(raw: bytes, name: str) -> State:
    where = Location(name)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StateError("state file is not UTF-8 text", where) from exc
    except json.JSONDecodeError as exc:
        raise StateError(f"state file is not valid JSON ({exc.msg}, column {exc.colno}); "
                         "it may be truncated — restore it from git", Location(name, exc.lineno)) from exc
    if not isinstance(data, dict):
        raise StateError("state file must hold a JSON object", where)
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateError("state file has no integer format_version", where)
    if version > FORMAT_VERSION:
        raise StateError(f"state format_version {version} is newer than this reconcile understands "
                         f"({FORMAT_VERSION}); upgrade reconcile", where)
    if version < 1:
        raise StateError(f"unknown state format_version {version}", where)
    lineage = data.get("lineage")
    serial = data.get("serial")
    leads = data.get("leads")
    if not isinstance(lineage, str) or not lineage:
        raise StateError("state lineage must be a non-empty string", where)
    if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
        raise StateError("state serial must be a non-negative integer", where)
    if not isinstance(leads, dict):
        raise StateError("state leads must be an object", where)
    unknown = set(data) - {"format_version", "lineage", "serial", "leads"}
    if unknown:
        raise StateError(f"state file has unknown field(s): {', '.join(sorted(unknown))}", where)
    return State(lineage=lineage, serial=serial,
                 leads={key: _parse_lead(key, value, where) for key, value in leads.items()})


def _parse_lead(key: str, value: Any, where: Location) -> StateLead:
    def bad(message: str) -> StateError:
        return StateError(f"state lead {key!r}: {message}", where)

    if not isinstance(value, dict):
        raise bad("must be an object")
    unknown = set(value) - _LEAD_FIELDS
    if unknown:
        raise bad(f"unknown field(s): {', '.join(sorted(unknown))}")
    lead_id = value.get("leadId")
    if lead_id is not None and (not isinstance(lead_id, int) or isinstance(lead_id, bool) or lead_id <= 0):
        raise bad("leadId must be a positive integer or null")
    for name in ("email", "foreignSysPersonId", "foreignSysType", "syncedAt"):
        if value.get(name) is not None and not isinstance(value[name], str):
            raise bad(f"{name} must be a string or null")
    if value.get("foreignSysType") is not None and value["foreignSysType"] not in FOREIGN_SYS_TYPES:
        raise bad(f"foreignSysType must be one of {', '.join(FOREIGN_SYS_TYPES)}")
    attributes = value.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
            isinstance(v, str) or v is None for v in attributes.values()):
        raise bad("attributes must map names to strings or null")
    if not (key.startswith(("id:", "fsp:", "email:"))):
        raise bad("key must start with id:, fsp: or email:")
    return StateLead(lead_id=lead_id, email=value.get("email"),
                     foreign_sys_person_id=value.get("foreignSysPersonId"),
                     foreign_sys_type=value.get("foreignSysType"), attributes=attributes,
                     synced_at=value.get("syncedAt"))


def lead_to_json(lead: StateLead) -> dict[str, Any]:
    return {"leadId": lead.lead_id, "email": lead.email, "foreignSysPersonId": lead.foreign_sys_person_id,
            "foreignSysType": lead.foreign_sys_type, "attributes": dict(lead.attributes),
            "syncedAt": lead.synced_at}


def state_to_json(state: State) -> dict[str, Any]:
    return {"format_version": state.format_version, "lineage": state.lineage, "serial": state.serial,
            "leads": {key: lead_to_json(lead) for key, lead in state.leads.items()}}


def serialize_state(state: State) -> bytes:
    # Sorted keys and a stable indent keep a small change a small git diff.
    return (json.dumps(state_to_json(state), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def content_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def state_file_hash(path: Path) -> str:
    """Hash of the state file as on disk; a missing file hashes as empty."""
    try:
        return content_hash(path.read_bytes())
    except FileNotFoundError:
        return content_hash(b"")


def write_state(path: Path, state: State) -> None:
    write_atomic(path, serialize_state(state))


def with_leads(state: State, leads: Mapping[str, StateLead]) -> State:
    """The next state: same lineage, serial + 1."""
    return State(lineage=state.lineage, serial=state.serial + 1, leads=dict(leads), format_version=FORMAT_VERSION)
