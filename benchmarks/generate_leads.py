"""Write N realistic leads (7 attributes each) over M files, and optionally a matching state file.

    python benchmarks/generate_leads.py DIR N M [--state FILE]

With --state, FILE records every lead as already applied (what `reconcile apply` would have written),
except that every 1000th lead has one attribute that differs (an update) and 10 extra records no
longer declared (orphans): a realistic "mostly in sync" repository, so a plan shows a few changes.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lee"]
TITLES = ["CTO", "VP Marketing", "Engineer", "Director of Ops", "Analyst"]
COUNTRIES = ["Norway", "Canada", "Japan", "Brazil", "Kenya", "Germany"]
SOURCES = ["Webinar", "Trade Show", "Website", "Referral"]


def lead_record(i: int, rng: random.Random) -> dict:
    """Lead number i as plain data (the rng draws are the same as the YAML's, in the same order)."""
    attributes = {"FirstName": rng.choice(FIRST), "LastName": rng.choice(LAST), "Company": f"Company {i % 997}",
                  "Title": rng.choice(TITLES), "Phone": f"650-555-{i % 10000:04d}",
                  "Country": rng.choice(COUNTRIES), "LeadSource": rng.choice(SOURCES)}
    record = {"email": f"lead{i}@example.com", "attributes": attributes}
    if i % 5 == 0:
        record.update(foreignSysPersonId=f"{i:08d}", foreignSysType="SFDC")
    return record


def lead_yaml(record: dict) -> str:
    if "foreignSysPersonId" in record:
        key = (f"  - foreignSysPersonId: \"{record['foreignSysPersonId']}\"\n"
               f"    foreignSysType: {record['foreignSysType']}\n    email: {record['email']}\n")
    else:
        key = f"  - email: {record['email']}\n"
    return key + "    attributes:\n" + "".join(f"      {name}: {value}\n"
                                             for name, value in record["attributes"].items())


def _records(count: int, files: int, seed: int):
    """(file index, lead index, record) for every lead, in file order."""
    rng = random.Random(seed)
    per_file = -(-count // files)
    for f in range(files):
        for i in range(f * per_file, min(count, (f + 1) * per_file)):
            yield f, i, lead_record(i, rng)


def generate(directory: Path, count: int, files: int, seed: int = 7) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    chunks: list[list[str]] = [["leads:\n"] for _ in range(files)]
    for f, _i, record in _records(count, files, seed):
        chunks[f].append(lead_yaml(record))
    paths = []
    for f, chunk in enumerate(chunks):
        path = directory / f"leads-{f:03d}.yaml"
        path.write_text("".join(chunk), encoding="utf-8")
        paths.append(path)
    return paths


def generate_state(path: Path, count: int, files: int, seed: int = 7, changed_every: int = 1000,
                   orphans: int = 10) -> None:
    """A state file as apply would have written it for these leads, with a few differences."""
    leads = {}
    for _f, i, record in _records(count, files, seed):
        attributes = dict(record["attributes"])
        if changed_every and i % changed_every == 0:
            attributes["Title"] = "Previous Title"
        fsp = record.get("foreignSysPersonId")
        key = f"fsp:{record['foreignSysType']}:{fsp}" if fsp else f"email:{record['email']}"
        leads[key] = {"leadId": i + 1, "email": record["email"], "foreignSysPersonId": fsp,
                      "foreignSysType": record.get("foreignSysType"), "attributes": attributes,
                      "syncedAt": "2026-01-01T00:00:00+00:00"}
    for j in range(orphans):
        leads[f"email:gone{j}@example.com"] = {"leadId": count + 1 + j, "email": f"gone{j}@example.com",
                                               "foreignSysPersonId": None, "foreignSysType": None,
                                               "attributes": {"Company": "Gone"},
                                               "syncedAt": "2026-01-01T00:00:00+00:00"}
    state = {"format_version": 1, "lineage": "00000000-0000-4000-8000-000000000000", "serial": 1, "leads": leads}
    path.write_text(json.dumps(state, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("files", type=int)
    parser.add_argument("--state", type=Path, help="also write a matching state file here")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    generate(args.directory, args.count, args.files, args.seed)
    print(f"wrote {args.count} leads over {args.files} files to {args.directory}")
    if args.state:
        generate_state(args.state, args.count, args.files, args.seed)
        print(f"wrote a matching state file to {args.state}")


if __name__ == "__main__":
    main()
