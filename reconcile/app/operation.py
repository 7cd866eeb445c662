"""One typed description of what plan and apply are asked to do, as Terraform's `Operation` is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from reconcile.apply.options import ApplyOptions

DEFAULT_LEADS = Path("leads")
DEFAULT_STATE = Path("reconcile.state.json")
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Operation:
    """The options `plan` and `apply` share, once the command line is read and checked."""

    leads: Path = DEFAULT_LEADS
    state: Path = DEFAULT_STATE
    api: str | None = None  # the transport's registry name (None: apply picks it from the credentials set)
    refresh: bool = False  # read Marketo first and plan against what it holds now
    refresh_only: bool = False  # apply: only record Marketo's current values
    targets: tuple[str, ...] = ()  # state keys or lead files: plan and apply only these leads
    format: str = "text"  # text, json or markdown
    compact: bool = False  # one line per action
    full: bool = False  # text: every action of a large plan, not a sample
    color: bool = False
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    out: Path | None = None  # plan: save the plan here
    plan_file: Path | None = None  # apply: the saved plan to apply exactly
    auto_approve: bool = False
    use_emulator: bool = False
    endpoint: str | None = None  # SOAP endpoint override
    foreign_id_field: str | None = None  # REST: the custom field that carries foreignSysPersonId
    batch_size: int | None = None  # apply: records per call (None: the transport's largest call)
    allow_delete: bool = False  # apply: delete leads without asking again
    delete_orphans: bool = False  # apply: delete the leads the state records that no lead file declares
    max_deletes: int = 0  # apply: with delete_orphans, the most orphans it may delete
    apply: ApplyOptions = field(default_factory=lambda: _default_apply_options())


def _default_apply_options() -> "ApplyOptions":
    from reconcile.apply.options import ApplyOptions  # the apply engine's imports: only when applying

    return ApplyOptions()
