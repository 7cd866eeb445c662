"""One import, from the leads asked for to the lead file and the state that declare them.

The caller holds the state lock and gives the state as recovered under it. The lead file is written
first and the state second, each atomically: a crash in between leaves leads declared but not yet
recorded, which the next plan shows as adoptions (apply then sends what Marketo already holds),
never state records that no file declares.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from reconcile.adopt.claims import Claims
from reconcile.adopt.leads import Adopted, FieldChoice, adopt, choose_fields, entries_of
from reconcile.adopt.reader import ReadEvent, read_calls, read_leads
from reconcile.adopt.request import ImportRequest
from reconcile.adopt.yamlout import LeadEntry, document, lead_block, schema_reference
from reconcile.core.clock import iso_utc, utc_now
from reconcile.core.model import State
from reconcile.errors import InputError, UsageError
from reconcile.store.fs import write_atomic
from reconcile.store.state import with_leads, write_state

LEAD_FILE_SUFFIXES = (".yaml", ".yml")
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_.:-]")


def check_destination(out: Path, leads_dir: Path, force: bool) -> None:
    """UsageError unless the lead file may be written at `out`: a new .yaml/.yml file inside the lead
    directory (where plan reads it), or an existing one with --force."""
    if out.suffix.lower() not in LEAD_FILE_SUFFIXES:
        raise UsageError(f"--out {out}: a lead file's name ends in .yaml or .yml")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give the lead file's name, e.g. {out / 'imported.yaml'}")
    if not out.resolve().is_relative_to(leads_dir.resolve()):
        raise UsageError(f"--out {out} is not inside the lead directory {leads_dir}, where plan reads lead files; "
                         f"write it there (or pass --leads)")
    if (out.exists() or out.is_symlink()) and not force:
        raise UsageError(f"--out {out} already exists; pass --force to replace it (its leads are then declared "
                         "only by what this import writes)")


@dataclass(frozen=True)
class ImportSettings:
    request: ImportRequest
    fields: Sequence[str] | None  # --fields, or None for the default
    out: Path
    state_path: Path
    instance: str
    concurrency: int
    # import --lists: the static lists of the imported leads (lead ID -> {name as a lead file gives it: ID})
    memberships_of: Callable[[Sequence[int]], Mapping[int, Mapping[str, int]]] | None = None


@dataclass(frozen=True)
class ImportResult:
    adopted: Adopted
    choice: FieldChoice
    calls: int
    dropped: int  # leads of the replaced file that the new one no longer declares


def run_import(client: Any, catalog_of: Callable[[], Any], settings: ImportSettings, desired: Sequence[Any],
               state: State, *,
               on_event: Callable[[ReadEvent], None] = lambda event: None,
               stop: threading.Event | None = None, now: Callable[[], Any] = utc_now) -> ImportResult:
    claims = Claims(desired, state, settings.out)
    claims.check(ids=settings.request.ids, emails=settings.request.emails)  # before any call
    choice = choose_fields(catalog_of(), settings.fields)  # the describe cache, or one Describe call
    calls = read_calls(settings.request)

    def convert(rows: list[dict]) -> tuple[list[LeadEntry], list[str], dict[int, str]]:
        entries, problems = entries_of(rows, choice)
        return entries, problems, {entry.lead_id: lead_block(entry) for entry in entries}

    answers = read_leads(client, calls, choice.rest_fields, convert, concurrency=settings.concurrency,
                         on_event=on_event, stop=stop)
    adopted = adopt(((entries, problems) for entries, problems, _ in answers), settings.request)
    if not adopted.entries:
        raise InputError(f"none of the {len(settings.request)} leads asked for is in Marketo instance "
                         f"{settings.instance}: {_missing_text(adopted)}; nothing was written")
    claims.check(found=adopted.entries)
    blocks: dict[int, str] = {}
    for _, _, rendered in answers:
        for lead_id, block in rendered.items():
            blocks.setdefault(lead_id, block)
    lists = settings.memberships_of([entry.lead_id for entry in adopted.entries]) if settings.memberships_of else {}
    if lists:
        adopted = dataclasses.replace(adopted, entries=tuple(
            dataclasses.replace(entry, lists=tuple(lists.get(entry.lead_id, {}))) for entry in adopted.entries))
        blocks.update((entry.lead_id, lead_block(entry)) for entry in adopted.entries if entry.lists)
    text = document([blocks[entry.lead_id] for entry in adopted.entries], schema_ref=schema_reference(settings.out),
                    header=_header(settings, choice))
    write_atomic(settings.out, text.encode("utf-8"))
    write_state(settings.state_path, with_leads(state, claims.leads_after(adopted.entries, iso_utc(now()), lists)))
    return ImportResult(adopted=adopted, choice=choice, calls=len(calls),
                        dropped=len(claims.no_longer_declared(adopted.entries)))


def missing_lines(adopted: Adopted, limit: int = 20) -> list[str]:
    lines = []
    if adopted.missing_ids:
        lines.append(f"{len(adopted.missing_ids)} lead ID(s) not found in Marketo: "
                     + _listed([str(i) for i in adopted.missing_ids], limit))
    if adopted.missing_emails:
        lines.append(f"{len(adopted.missing_emails)} email(s) not found in Marketo: "
                     + _listed(list(adopted.missing_emails), limit))
    return lines


def _missing_text(adopted: Adopted) -> str:
    return "; ".join(missing_lines(adopted, limit=5)) or "Marketo answered no lead"


def _listed(values: list[str], limit: int) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _header(settings: ImportSettings, choice: FieldChoice) -> list[str]:
    # A comment ends at a line break: the instance (from the endpoint) and the field names (from
    # Describe) appear only as far as they are plain names.
    instance = _NOT_A_NAME.sub("?", settings.instance)
    fields = ", ".join(_NOT_A_NAME.sub("?", name) for name in choice.names) if choice.names else "none"
    return [f"Imported from Marketo instance {instance} by `reconcile import`; fields: {fields}.",
            "Values are Marketo's text exactly; quoted where YAML would read them as something else."]
