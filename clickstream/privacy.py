"""`clickstream forget`, `verify-erasure` and `rotate-key`: the privacy promises kept."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clickstream.options import (
    add_key_file,
    add_spark_options,
    add_wait,
    add_warehouse,
    pii_key,
    say,
    start_spark,
)

__all__ = ["add_commands", "render_erasure", "render_verification"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    forget = commands.add_parser(
        "forget", help="erase one person from every table (and the landing files), with proof"
    )
    forget.set_defaults(handler=_forget)
    forget.add_argument("--landing", type=Path, required=True, help="landing directory")
    add_warehouse(forget)
    forget.add_argument("--user-id", required=True, help="the person's raw user id, e.g. u-000042")
    add_key_file(forget)
    forget.add_argument(
        "--purge-now",
        action="store_true",
        help=(
            "VACUUM with zero retention, so the removed files are gone when the command "
            "returns; costs every earlier table version (time travel) and may fail readers "
            "running at that moment (default: Delta's retention, 7 days)"
        ),
    )
    forget.add_argument(
        "--include-landing",
        action="store_true",
        help="also rewrite the landing files that hold the person, without their lines",
    )
    forget.add_argument(
        "--request-id", default=None, help="name of the erasure certificate (default: generated)"
    )
    add_wait(forget)

    verify = commands.add_parser(
        "verify-erasure",
        help="read every file under the warehouse for a person's values and their keyed hashes",
    )
    verify.set_defaults(handler=_verify_erasure)
    add_warehouse(verify)
    verify.add_argument("--user-id", required=True, help="the person's raw user id")
    for flag, what in (("--email", "e-mail address"), ("--name", "full name"), ("--ip", "IP")):
        verify.add_argument(
            flag, action="append", default=[], help=f"a {what} of the person (repeatable)"
        )
    verify.add_argument(
        "--landing",
        type=Path,
        default=None,
        help="also take the person's values from the landing files that still hold them",
    )
    add_key_file(verify)

    rotate = commands.add_parser(
        "rotate-key", help="re-key every pseudonym to a new PII key, then purge the old ones"
    )
    rotate.set_defaults(handler=_rotate_key)
    rotate.add_argument("--landing", type=Path, required=True, help="landing directory")
    add_warehouse(rotate)
    rotate.add_argument(
        "--new-key-file", type=Path, required=True, help="file holding the new PII key"
    )
    add_key_file(rotate, "file holding the current PII key (default: as for run)")
    rotate.add_argument(
        "--purge-now",
        action="store_true",
        help="VACUUM with zero retention: the old pseudonyms' files are gone on return",
    )
    add_wait(rotate)
    for command in (forget, verify, rotate):
        add_spark_options(command)


def _forget(args: argparse.Namespace) -> int:
    from pipeline.privacy.erasure import forget

    started = time.perf_counter()
    key = pii_key(args.pii_key_file)
    if args.purge_now:
        say(
            "--purge-now: VACUUM at zero retention. Every table version before this erasure "
            "stops being readable (time travel), and a query reading the warehouse right now "
            "may fail on a deleted file."
        )
    spark = start_spark(args)
    try:
        result = forget(
            spark,
            landing=args.landing,
            warehouse=args.warehouse,
            pii_key=key,
            user_id=args.user_id,
            purge_now=args.purge_now,
            include_landing=args.include_landing,
            request_id=args.request_id,
            progress=say,
            wait_seconds=args.wait,
        )
    finally:
        spark.stop()
    print(render_erasure(result.document))
    print(f"certificate: {result.certificate}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def render_erasure(document: Mapping[str, Any]) -> str:
    """A person-readable summary of an erasure certificate (no values: kinds and counts)."""
    lines = [f"erasure {document['request_id']}: {document['status']}"]
    searched = ", ".join(f"{n} {kind}" for kind, n in document["searched"].items())
    lines.append(f"searched for: {searched}")
    for kind, n in document.get("shared_not_searched", {}).items():
        lines.append(f"  not searched: {n} {kind} also carried by other people's records")
    before, after = document["rows_before"], document["rows_after"]
    for table, rows in document["rows_of_person"].items():
        lines.append(f"  {table:<28} {rows:>8,} rows of the person found")
    for table in before:
        if before[table] != after.get(table):
            lines.append(f"  {table:<28} {before[table]:>8,} -> {after.get(table):,} rows")
    vacuum = document["vacuum"]
    lines.append(
        f"VACUUM at {vacuum['retention_hours']} h retention deleted "
        f"{vacuum['files_deleted']} data files"
    )
    landing = document["landing"]
    for entry in landing.get("rewritten", []):
        lines.append(f"  landing {entry['file']}: {entry['lines_removed']} lines removed")
    for entry in landing.get("still_holding", []):
        lines.append(
            f"  landing {entry['file']} still holds {entry['lines']} lines of the person "
            "(--include-landing rewrites it)"
        )
    lines += render_verification(document["verification"])
    return "\n".join(lines)


def render_verification(verification: Mapping[str, Any]) -> list[str]:
    """The verifier's record as lines: what it read, what it found."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in verification["files_by_kind"].items())
    lines = [f"verification: read {verification['files_read']} files ({kinds})"]
    for finding in verification["findings"]:
        lines.append(f"  FOUND {finding['label']} in {finding['path']} ({finding['where']})")
    for path in verification["unreadable_files"]:
        lines.append(f"  UNREADABLE {path}")
    for table, history in verification["time_travel"].items():
        returning = history["versions_returning_person"]
        lines.append(
            f"  {table}: {history['versions']} versions, {history['versions_read']} read "
            "(the others hold only files a version read without the person holds), "
            f"{len(history['versions_unreadable'])} unreadable (files vacuumed), "
            f"{len(returning)} returning the person"
            + (f": versions {returning}" if returning else "")
        )
    current = [
        table
        for table, history in verification["time_travel"].items()
        if history["versions"] - 1 in history["versions_returning_person"]
    ]
    if verification["passed"]:
        lines.append("verification passed: nothing of the person in any file or version")
    elif current:
        lines.append(
            f"verification FAILED: the current version of {', '.join(current)} holds the "
            "person (not erased, or their records arrived again since): run forget"
        )
    else:
        lines.append(
            "verification FAILED: the person is still in the files or versions above "
            "(without --purge-now, removed files stay until Delta's retention has passed)"
        )
    return lines


def _verify_erasure(args: argparse.Namespace) -> int:
    from pipeline.privacy.erasure import Person, find_person, verify
    from pipeline.privacy.landing_scrub import scan_landing

    key = pii_key(args.pii_key_file)
    spark = start_spark(args)
    try:
        in_landing = scan_landing(args.landing, args.user_id)[0] if args.landing else None
        found = find_person(spark, args.warehouse.resolve(), args.user_id, in_landing)
        person = Person(
            user_id=args.user_id,
            emails=tuple(sorted({*found.emails, *args.email})),
            names=tuple(sorted({*found.names, *args.name})),
            ips=tuple(sorted({*found.ips, *args.ip})),
        )
        verification = verify(spark, args.warehouse.resolve(), person, key)
    finally:
        spark.stop()
    searched = ", ".join(f"{n} {kind}" for kind, n in person.searched.items())
    print(f"searched for: {searched}, and the keyed hash of each")
    print("\n".join(render_verification(verification)))
    return 0 if verification["passed"] else 1


def _rotate_key(args: argparse.Namespace) -> int:
    from pipeline.config import exposed_key_file, pii_key_from_file
    from pipeline.privacy.key_rotation import rotate_key

    started = time.perf_counter()
    old_key = pii_key(args.pii_key_file)
    new_key = pii_key_from_file(args.new_key_file)
    warning = exposed_key_file(args.new_key_file)
    if warning:
        say(f"warning: {warning}")
    spark = start_spark(args)
    try:
        result = rotate_key(
            spark,
            landing=args.landing,
            warehouse=args.warehouse,
            old_key=old_key,
            new_key=new_key,
            purge_now=args.purge_now,
            progress=say,
            wait_seconds=args.wait,
        )
    finally:
        spark.stop()
    print(f"re-keyed from key version {result.old_version} to {result.new_version}:")
    for table, rows in result.rows_rekeyed.items():
        print(f"  {table:<28} {rows:>8,} rows re-keyed")
    print(f"  {result.pseudonyms:,} distinct pseudonyms mapped; gold recomputed from them")
    print(
        f"VACUUM at {result.retention_hours} h retention deleted {result.files_deleted} files; "
        f"read {result.scan.files} files: {len(result.scan.findings)} old pseudonyms found"
    )
    for finding in result.scan.findings[:20]:
        print(f"  FOUND an old pseudonym in {finding.path} ({finding.where})")
    print(
        f"from now on runs must use the new key (--pii-key-file {args.new_key_file} or "
        "$CLICKSTREAM_PII_KEY_FILE); the old key is refused"
    )
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0 if not result.scan.findings or not args.purge_now else 1
