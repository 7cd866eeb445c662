"""Saved plans (`plan --out`): what was planned, and fingerprints of the inputs it was planned from.

Applying a saved plan re-plans from the same inputs after checking that neither the state nor any
lead file changed since; the planner is deterministic, so the result is exactly the saved plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reconcile import __version__
from reconcile.errors import InputError, Location, StalePlanError, UsageError
from reconcile.core.model import Plan, State
from reconcile.core.render import plan_to_json
from reconcile.store.fs import write_atomic
from reconcile.store.state import content_hash, state_hash as hash_of_state

PLAN_FILE_KIND = "reconcile-plan"
PLAN_FILE_VERSION = 1


@dataclass(frozen=True)
class SavedPlan:
    leads_dir: str
    state_path: str
    lineage: str
    serial: int
    state_hash: str
    files_hash: str
    files: tuple[str, ...]
    plan: dict
    file_digests: dict[str, str] | None = None  # per lead file, to name the ones edited since


def check_destination(path: Path) -> None:
    """UsageError (exit 64) unless a plan file can be written at `path`; checked before planning."""
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give the plan file's name, e.g. {path / 'plan.json'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {path}: {parent} is a file, not a directory")


def save(path: Path, plan: Plan, *, desired, state: State, state_path: Path, leads_dir: Path,
         state_hash: str | None = None) -> None:
    """`state_hash`: the hash the state file will have when the plan is applied, if not its current one
    (a leftover journal that apply replays first)."""
    data = {"kind": PLAN_FILE_KIND, "format_version": PLAN_FILE_VERSION, "reconcile_version": __version__,
            "inputs": {"leads_dir": leads_dir.as_posix(), "lead_files": list(desired.files),
                       "lead_files_hash": desired.files_hash, "state_path": state_path.as_posix(),
                       "lead_file_digests": dict(zip(desired.files, desired.file_digests)),
                       "state_lineage": state.lineage, "state_serial": state.serial,
                       "state_hash": state_hash or hash_of_state(state_path)},
            "plan": plan_to_json(plan)}
    check_destination(path)
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def load(path: Path) -> SavedPlan:
    where = Location(str(path))
    _refuse_lead_files(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") != PLAN_FILE_KIND:
            raise InputError("not a reconcile plan file", where)
        if data.get("format_version") != PLAN_FILE_VERSION:
            raise InputError(f"unsupported plan format_version {data.get('format_version')!r}", where)
        inputs = data["inputs"]
        return SavedPlan(leads_dir=inputs["leads_dir"], state_path=inputs["state_path"],
                         lineage=inputs["state_lineage"], serial=int(inputs["state_serial"]),
                         state_hash=inputs["state_hash"], files_hash=inputs["lead_files_hash"],
                         files=tuple(inputs["lead_files"]), plan=data["plan"],
                         file_digests=_dict_or_none(inputs.get("lead_file_digests")))
    except FileNotFoundError as exc:
        raise InputError("plan file not found", where) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as exc:
        raise InputError(f"cannot read plan file: {exc}", where) from exc


def _refuse_lead_files(path: Path) -> None:
    """`reconcile apply leads/customers.yaml` (or `apply leads/`): lead files where a saved plan goes."""
    what = ("a directory" if path.is_dir() else "a lead file" if path.suffix.lower() in (".yaml", ".yml")
            else None)
    if what is not None:
        shown = path.as_posix() if path.is_dir() else path.parent.as_posix()
        raise UsageError(f"{path.as_posix()} is {what}, not a saved plan: apply reads the lead files itself; "
                         f"run `reconcile apply --leads {shown}` (PLAN_FILE is a plan saved by "
                         "`reconcile plan --out FILE`)")


def _dict_or_none(value) -> dict | None:
    return value if isinstance(value, dict) else None  # plans saved before it was recorded have none


def check_fresh(saved: SavedPlan, *, desired, state: State, state_path: Path) -> None:
    """Raise StalePlanError, saying what changed, if the inputs differ from when the plan was made."""
    changed = []
    # The file's hash decides; lineage and serial only explain. (A state file that did not exist
    # then and does not now has a fresh random lineage on every load.)
    if hash_of_state(state_path) != saved.state_hash:
        if saved.state_hash == content_hash(b""):
            changed.append(f"the state file was created since (now serial {state.serial})")
        elif state.lineage != saved.lineage:
            changed.append(f"the state's lineage changed ({saved.lineage} → {state.lineage})")
        elif state.serial != saved.serial:
            changed.append(f"the state was written since (serial {saved.serial} → {state.serial})")
        else:
            changed.append("the state file's content changed")
    if desired.files_hash != saved.files_hash:
        added = sorted(set(desired.files) - set(saved.files))
        removed = sorted(set(saved.files) - set(desired.files))
        detail = []
        if added:
            detail.append("added " + ", ".join(added))
        if removed:
            detail.append("removed " + ", ".join(removed))
        current = dict(zip(desired.files, desired.file_digests))
        edited = sorted(name for name, digest in (saved.file_digests or {}).items()
                        if name in current and current[name] != digest)
        if edited:
            detail.append("edited " + ", ".join(edited))
        if not detail:
            detail.append("edited")
        changed.append("lead files changed (" + "; ".join(detail) + ")")
    if changed:
        raise StalePlanError("saved plan is stale: " + "; ".join(changed) + ". Run `reconcile plan` again.")
