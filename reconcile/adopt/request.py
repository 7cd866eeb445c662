"""Which leads an import asks for: `--id`, `--email` and `--ids-from FILE`, checked before any call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from reconcile.errors import InputError, InputErrors, Location, UsageError

MAX_LEAD_ID = 2**31 - 1  # the lead-file schema's bound on leadId


@dataclass(frozen=True)
class ImportRequest:
    """Lead IDs and emails to import, each once, in the order first given."""

    ids: tuple[int, ...]
    emails: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids) + len(self.emails)


def build_request(ids: Iterable[str], emails: Iterable[str], ids_from: Path | None) -> ImportRequest:
    wanted: dict[int, None] = {}
    for text in ids:
        wanted.setdefault(_lead_id(text, lambda message: UsageError(f"--id {text!r}: {message}")), None)
    if ids_from is not None:
        for lead_id in read_ids_file(ids_from):
            wanted.setdefault(lead_id, None)
    addresses: dict[str, str] = {}
    for email in emails:
        email = email.strip()
        if not email or "@" not in email or "," in email or any(char.isspace() for char in email):
            raise UsageError(f"--email {email!r} is not an email address (Get Leads takes no spaces or commas in one)")
        addresses.setdefault(email.lower(), email)
    if not wanted and not addresses:
        raise UsageError("import needs the leads to read: --id ID, --email EMAIL or --ids-from FILE")
    return ImportRequest(ids=tuple(wanted), emails=tuple(addresses.values()))


def read_ids_file(path: Path) -> list[int]:
    """Lead IDs, one a line; blank lines and `#` comments are ignored. Errors name each line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"--ids-from {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the lead IDs: {getattr(exc, 'strerror', None) or exc}",
                         Location(str(path))) from None
    found: list[int] = []
    errors: list[InputError] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            found.append(_lead_id(entry, lambda message: InputError(message, Location(str(path), number))))
        except InputError as exc:
            errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return found


def _lead_id(text: str, error) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise error(f"{text[:40]!r} is not a Marketo lead ID (a whole number from 1 to {MAX_LEAD_ID})")
    value = int(text)
    if not 1 <= value <= MAX_LEAD_ID:
        raise error(f"{value} is not a Marketo lead ID (a whole number from 1 to {MAX_LEAD_ID})")
    return value
