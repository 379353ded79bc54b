"""Erasure of one person (`clickstream forget`) and its proof (`clickstream verify-erasure`).

A person is named by their raw user id. Their own records (bronze rows and landing lines with
that id) give the e-mail addresses, names and IPs to look for; values that other people's
records carry too (a common name, a shared IP) identify nobody and are left alone, so every
other person's rows stay as they were. Rows are the person's when they carry the id or one of
their own e-mail addresses (bronze: typed columns, rescued data; the quarantine: the raw
line), or the keyed hash of either (silver, its quarantine and late table, the user change
log, gold).

The steps, each safe to repeat, so a `forget` killed midway is finished by running it again:

1. Delta DELETE from the user change log and the silver tables, then every gold table
   recomputed from them (`pipeline.run.gold_stage.refresh_gold`): facts, dimensions, aggregates;
2. DELETE from the quarantine and bronze (last: until then they still name the values);
3. `REORG TABLE ... APPLY (PURGE)`, rewriting the files whose deletion vectors hide the rows;
4. `VACUUM`, at Delta's retention (7 days by default) or, with `purge_now`, at zero;
5. landing files rewritten without the person's lines (`include_landing`), or listed;
6. verification: every file under the warehouse read (`pipeline.privacy.pii_scan`), and every
   earlier version of every table read by time travel.

An erasure certificate (`<warehouse>/_erasure/<request>.json`) records what was searched (kinds
and counts, never the values), rows removed per table, Delta versions, files purged, landing
files, and the verification. Delta statistics hold no personal columns
(`pipeline.storage.delta_tables.table_properties`), so the transaction log, which VACUUM leaves,
holds
none of the values.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.clock import utc_now_text
from pipeline.config import PiiKey, require_classic
from pipeline.errors import UnknownPersonError
from pipeline.observe.event_log import new_update_id, recorded_update
from pipeline.privacy import key_registry, landing_scrub, pii_scan
from pipeline.run import run_state
from pipeline.run.gold_stage import refresh_gold
from pipeline.run.vacuum import (
    DEFAULT_RETENTION_HOURS,
    tables_with_removed_files,
    vacuum_tables,
)
from pipeline.run.writer_lock import writer_lock
from pipeline.storage import delta_log
from pipeline.storage.tables import table_exists, table_path
from pipeline.table_names import (
    BRONZE_EVENTS,
    BRONZE_QUARANTINE,
    GOLD_DIM_USER,
    GOLD_DIM_USER_CHANGES,
    GOLD_FACT_EVENTS,
    GOLD_SESSIONS,
    SILVER_EVENTS,
    SILVER_LATE_EVENTS,
    SILVER_QUARANTINE,
)
from pipeline.transforms.pseudonymize import keyed_hash

__all__ = [
    "ERASURE_DIR",
    "PERSON_CONDITIONS",
    "Person",
    "find_person",
    "forget",
    "needles",
    "person_frame",
    "verify",
]

RUNNER = "clickstream forget"
"""The program an erasure's update names in the event log (its error is recorded by class
only: a message may name the person)."""

ERASURE_DIR = "_erasure"
"""Where the erasure certificates live, under the warehouse."""
_SUBJECT_TEXT = "clickstream: erasure subject:"


@dataclass(frozen=True)
class Person:
    """The values that identify one person, and those shared with others (left alone)."""

    user_id: str
    emails: tuple[str, ...]
    names: tuple[str, ...]
    ips: tuple[str, ...]
    shared: tuple[tuple[str, int], ...] = ()
    """(kind, how many) of the person's values that other people's records carry too."""

    def hashes(self, key: PiiKey) -> dict[str, str]:
        """label -> the keyed hash of each value, as silver and gold store it."""
        values = self._labelled()
        return {f"hmac({label})": keyed_hash(key, value) for label, value in values.items()}

    def _labelled(self) -> dict[str, str]:
        labelled = {"user_id": self.user_id}
        for kind, values in (("email", self.emails), ("name", self.names), ("ip", self.ips)):
            labelled |= {f"{kind} #{n}": value for n, value in enumerate(sorted(values), 1)}
        return labelled

    @property
    def searched(self) -> dict[str, int]:
        """How many values of each kind are searched (the certificate's record)."""
        return {
            "user_id": 1,
            "email": len(self.emails),
            "name": len(self.names),
            "ip": len(self.ips),
        }


def needles(person: Person, key: PiiKey) -> list[pii_scan.Needle]:
    """What the verifier searches: each value in clear, and its keyed hash."""
    clear = [pii_scan.Needle(label, value) for label, value in person._labelled().items()]
    hashed = [pii_scan.Needle(label, value) for label, value in person.hashes(key).items()]
    return clear + hashed


def find_person(
    spark: SparkSession,
    warehouse: Path,
    user_id: str,
    in_landing: landing_scrub.PersonValues | None = None,
) -> Person:
    """The person's values, from bronze's typed columns and what the landing files' records
    carry (`in_landing`, from `landing_scrub.scan_landing`), without the shared ones."""
    found = in_landing or landing_scrub.PersonValues()
    if table_exists(warehouse, BRONZE_EVENTS):
        users = (
            spark.read.format("delta")
            .load(table_path(warehouse, BRONZE_EVENTS))
            .select("user.user_id", "user.email", "user.full_name", "user.ip")
        )
        for row in users.where(F.col("user_id") == user_id).distinct().collect():
            _add(found.emails, row.email)
            _add(found.names, row.full_name)
            _add(found.ips, row.ip)
        values = sorted(found.emails | found.names | found.ips)
        carried = (
            F.col("email").isin(values) | F.col("full_name").isin(values) | F.col("ip").isin(values)
        )
        others = users.where((F.col("user_id") != user_id) & carried).distinct()
        for row in others.collect():
            found.others.update(v for v in (row.email, row.full_name, row.ip) if v)
    shared = {
        kind: values & found.others
        for kind, values in (("email", found.emails), ("name", found.names), ("ip", found.ips))
    }
    return Person(
        user_id=user_id,
        emails=tuple(sorted(found.emails - shared["email"])),
        names=tuple(sorted(found.names - shared["name"])),
        ips=tuple(sorted(found.ips - shared["ip"])),
        shared=tuple((kind, len(values)) for kind, values in shared.items() if values),
    )


def _add(target: set[str], value: str | None) -> None:
    if value:
        target.add(value)


def person_frame(spark: SparkSession, person: Person, key: PiiKey) -> DataFrame:
    """One row holding what picks the person's rows: the id, the e-mail addresses, their
    keyed hashes, and what marks a raw line as theirs (the quoted id, address patterns).

    The values enter queries as this frame's data, never as literals: a literal would be
    written to the Delta log with the predicate of every DELETE, in clear, for 30 days.
    """
    row = (
        person.user_id,
        list(person.emails),
        keyed_hash(key, person.user_id),
        [keyed_hash(key, email) for email in person.emails],
        orjson.dumps(person.user_id).decode(),
        [landing_scrub.email_pattern(email) for email in person.emails],
    )
    schema = (
        "user_id string, emails array<string>, user_key string, email_hashes array<string>, "
        "quoted_id string, email_patterns array<string>"
    )
    return spark.createDataFrame([row], schema)


_NAMES_PERSON = "(contains({text}, s.quoted_id) OR exists(s.email_patterns, p -> {text} rlike p))"
"""Raw text that holds the quoted user id or one of the e-mail addresses as a whole word."""
_HASHED = "t.user_key = s.user_key OR array_contains(s.email_hashes, t.email_hash)"
_BY_KEY = "t.user_key = s.user_key"
PERSON_CONDITIONS: dict[str, str] = {
    GOLD_DIM_USER_CHANGES: _HASHED,
    SILVER_EVENTS: _HASHED,
    SILVER_QUARANTINE: _HASHED,
    SILVER_LATE_EVENTS: _HASHED,
    GOLD_DIM_USER: _HASHED,
    GOLD_FACT_EVENTS: _BY_KEY,
    GOLD_SESSIONS: _BY_KEY,
    BRONZE_QUARANTINE: _NAMES_PERSON.format(text="t.raw_line"),
    BRONZE_EVENTS: (
        "t.user.user_id = s.user_id OR array_contains(s.emails, t.user.email) OR "
        + _NAMES_PERSON.format(text="coalesce(t._rescued_data, '')")
    ),
}
"""Per table, the condition (table `t`, `person_frame` `s`) that picks the person's rows."""


def _persons_rows(table: DataFrame, person: DataFrame, name: str) -> DataFrame:
    return table.alias("t").join(person.alias("s"), F.expr(PERSON_CONDITIONS[name]), "left_semi")


DELETED_FIRST = (GOLD_DIM_USER_CHANGES, SILVER_EVENTS, SILVER_QUARANTINE, SILVER_LATE_EVENTS)
"""Deleted from first; gold is then recomputed from them."""
DELETED_LAST = (BRONZE_QUARANTINE, BRONZE_EVENTS)
"""Deleted from last: until then a resumed erasure still finds the person's values there."""


def _subject(key: PiiKey, user_id: str) -> str:
    """Identifies the person of a certificate to the key's holder, and to no one else; it is
    not the pseudonym any table stores."""
    message = f"{_SUBJECT_TEXT}{user_id}".encode()
    return hmac.new(key.reveal(), message, hashlib.sha256).hexdigest()[:16]


class _Certificate:
    """The erasure certificate, rewritten atomically after each step."""

    def __init__(self, warehouse: Path, subject: str, request_id: str | None) -> None:
        self.directory = warehouse / ERASURE_DIR
        unfinished = self._unfinished(subject) if request_id is None else None
        generated = new_update_id()
        self.document: dict[str, Any] = unfinished or {
            "request_id": request_id or generated,
            "subject": subject,
            "status": "in progress",
            "started_at": utc_now_text(),
            "steps_done": [],
        }
        self.resumed = unfinished is not None

    def _unfinished(self, subject: str) -> dict[str, Any] | None:
        if not self.directory.is_dir():
            return None
        for path in sorted(self.directory.glob("*.json")):
            document: dict[str, Any] = orjson.loads(path.read_bytes())
            if document.get("subject") == subject and document.get("status") != "completed":
                return document
        return None

    @property
    def path(self) -> Path:
        return self.directory / f"{self.document['request_id']}.json"

    def record(self, **entries: Any) -> None:
        self.document.update(entries)
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_bytes(orjson.dumps(self.document, option=orjson.OPT_INDENT_2))
        partial.replace(self.path)

    def done(self, step: str) -> None:
        if step not in self.document["steps_done"]:
            self.record(steps_done=[*self.document["steps_done"], step])


@dataclass(frozen=True)
class ErasureResult:
    """What `forget` did: the certificate's path and document."""

    certificate: Path
    document: dict[str, Any]

    @property
    def verified(self) -> bool:
        """Whether the verifier found nothing of the person anywhere."""
        return bool(self.document["verification"]["passed"])


def forget(
    spark: SparkSession,
    *,
    landing: Path | None,
    warehouse: Path,
    pii_key: PiiKey,
    user_id: str,
    purge_now: bool = False,
    include_landing: bool = False,
    request_id: str | None = None,
    progress: Callable[[str], None] | None = None,
    wait_seconds: float = 0.0,
) -> ErasureResult:
    """Erase the person with `user_id` from every table (see the module's docstring).

    Raises:
        UnknownPersonError: nothing anywhere belongs to `user_id`; nothing was changed.
        WarehouseBusyError: a run (or another erasure) writes the warehouse.
        PiiKeyMismatchError: `pii_key` is not the warehouse's key.
    """
    require_classic(spark, "`clickstream forget`")
    report = progress or (lambda _message: None)
    warehouse = warehouse.resolve()
    landing = landing.resolve() if landing is not None else None
    with (
        writer_lock(warehouse, wait_seconds=wait_seconds, notify=report),
        recorded_update(
            warehouse,
            new_update_id(),
            flows=(),
            full_refresh=False,
            runner=RUNNER,
            about_a_person=True,
        ),
    ):
        key_registry.admit(warehouse, pii_key)
        certificate = _Certificate(warehouse, _subject(pii_key, user_id), request_id)
        report("finding the person in bronze and the landing files")
        person, in_landing, rows, holding = _find(spark, landing, warehouse, user_id, pii_key)
        if not certificate.resumed and not any(holding.values()) and not in_landing:
            raise UnknownPersonError(
                f"No table of {warehouse} and no landing file holds user id {user_id!r} (nor "
                "its keyed hash under the current key): nothing was changed. Check the id; "
                "ids are case-sensitive, like 'u-000042'."
            )
        if "rows_of_person" not in certificate.document:  # a resumed erasure keeps its record
            certificate.record(
                searched=person.searched,
                shared_not_searched=dict(person.shared),
                rows_before=_row_counts(warehouse),
                versions_before=run_state.table_versions(warehouse),
                rows_of_person=holding,
            )
        _erase_rows(spark, warehouse, rows, holding, report)
        certificate.done("deleted")
        _purge(spark, warehouse, certificate, holding, report)
        certificate.done("purged")
        _vacuum(spark, warehouse, certificate, purge_now, report)
        certificate.done("vacuumed")
        rewritten = _landing_step(landing, person, in_landing, include_landing, certificate)
        # The versions when the erasure began, also when this run resumes it.
        began = certificate.document["versions_before"]
        run_state.record_maintenance(warehouse, began, landing, rewritten)
        report("verifying: every file under the warehouse, every earlier table version")
        verification = verify(spark, warehouse, person, pii_key)
        certificate.record(
            verification=verification,
            status="completed",
            completed_at=utc_now_text(),
            purge_now=purge_now,
        )
        return ErasureResult(certificate.path, certificate.document)


def _find(
    spark: SparkSession, landing: Path | None, warehouse: Path, user_id: str, key: PiiKey
) -> tuple[Person, list[landing_scrub.LandingMatch], DataFrame, dict[str, int]]:
    """The person's values, the landing files holding them, what picks their rows
    (`person_frame`), and their rows per table."""
    values, in_landing = (
        landing_scrub.scan_landing(landing, user_id)
        if landing is not None
        else (landing_scrub.PersonValues(), [])
    )
    person = find_person(spark, warehouse, user_id, values)
    rows = person_frame(spark, person, key)
    return person, in_landing, rows, _rows_holding(spark, warehouse, rows)


def _erase_rows(
    spark: SparkSession,
    warehouse: Path,
    rows: DataFrame,
    holding: dict[str, int],
    report: Callable[[str], None],
) -> None:
    """Delete the person's rows: silver and the change log, gold recomputed from them, then
    bronze (until then a resumed erasure still finds the person's values there)."""
    deleting = [t for t, n in holding.items() if n]
    _delete(spark, warehouse, rows, [t for t in DELETED_FIRST if t in deleting], report)
    report("gold: recomputing every gold table from silver and the user change log")
    refresh_gold(spark, warehouse)
    _delete(spark, warehouse, rows, [t for t in DELETED_LAST if t in deleting], report)


def _purge(
    spark: SparkSession,
    warehouse: Path,
    certificate: _Certificate,
    holding: dict[str, int],
    report: Callable[[str], None],
) -> None:
    """Rewrite the files whose deletion vectors hide the person's rows (also those of an
    earlier, interrupted attempt), so that no live file holds them."""
    recorded = certificate.document["rows_of_person"]
    purged = [t for t in (*DELETED_FIRST, *DELETED_LAST) if recorded.get(t) or holding.get(t)]
    report(f"purging deletion vectors: REORG TABLE ... APPLY (PURGE) of {len(purged)} tables")
    for table in purged:
        spark.sql(f"REORG TABLE delta.`{table_path(warehouse, table)}` APPLY (PURGE)")


def _vacuum(
    spark: SparkSession,
    warehouse: Path,
    certificate: _Certificate,
    purge_now: bool,
    report: Callable[[str], None],
) -> None:
    """VACUUM the tables holding removed files, at zero retention with `purge_now`, else at
    Delta's default; record what it deleted."""
    retention = 0 if purge_now else DEFAULT_RETENTION_HOURS
    holding_files = tables_with_removed_files(warehouse, retention)
    report(f"VACUUM of {len(holding_files)} tables at {retention} hours' retention")
    deleted = vacuum_tables(spark, warehouse, retention, holding_files)
    certificate.record(
        vacuum={"retention_hours": retention, "files_deleted": deleted},
        rows_after=_row_counts(warehouse),
        versions_after=run_state.table_versions(warehouse),
    )


def _row_counts(warehouse: Path) -> dict[str, int | None]:
    return {t: delta_log.row_count(warehouse / t) for t in run_state.existing_tables(warehouse)}


def _rows_holding(spark: SparkSession, warehouse: Path, person: DataFrame) -> dict[str, int]:
    """Rows of the person per table, now: one query over every table (each count of its own
    was a Spark job and a plan of its own)."""
    present = [table for table in PERSON_CONDITIONS if table_exists(warehouse, table)]
    found = functools.reduce(
        DataFrame.unionAll,
        [
            _persons_rows(_read(spark, warehouse, table), person, table).select(
                F.lit(table).alias("table")
            )
            for table in present
        ],
    )
    counts = {row["table"]: row["count"] for row in found.groupBy("table").count().collect()}
    return {table: counts.get(table, 0) for table in present}


def _read(spark: SparkSession, warehouse: Path, table: str) -> DataFrame:
    return spark.read.format("delta").load(table_path(warehouse, table))


def _delete(
    spark: SparkSession,
    warehouse: Path,
    person: DataFrame,
    tables: list[str],
    report: Callable[[str], None],
) -> None:
    """Delete the person's rows by a MERGE whose source is `person_frame`: its commit records
    the condition, not the values."""
    for table in tables:
        report(f"{table}: deleting the person's rows")
        (
            DeltaTable.forPath(spark, table_path(warehouse, table))
            .alias("t")
            .merge(person.alias("s"), PERSON_CONDITIONS[table])
            .whenMatchedDelete()
            .execute()
        )


def _landing_step(
    landing: Path | None,
    person: Person,
    in_landing: list[landing_scrub.LandingMatch],
    include_landing: bool,
    certificate: _Certificate,
) -> tuple[str, ...]:
    if landing is None:
        certificate.record(landing={"searched": False})
        return ()
    if not include_landing:
        certificate.record(
            landing={
                "searched": True,
                "rewritten": [],
                "still_holding": [{"file": m.file, "lines": m.lines} for m in in_landing],
            }
        )
        return ()
    rewritten = [
        {
            "file": m.file,
            "lines_removed": landing_scrub.rewrite_without(
                landing / m.file, person.user_id, person.emails
            ),
        }
        for m in in_landing
    ]
    certificate.record(landing={"searched": True, "rewritten": rewritten, "still_holding": []})
    return tuple(m.file for m in in_landing)


def verify(spark: SparkSession, warehouse: Path, person: Person, key: PiiKey) -> dict[str, Any]:
    """Search every file under the warehouse for the person's values and hashes, and read
    every earlier version of the person's tables by time travel.

    Returns:
        The verification record: files read per kind, findings (path, what, where: never the
        value), per table the versions read, unreadable (their files vacuumed) and returning
        the person, and whether it passed (no finding, no version returning the person).
    """
    scanned = pii_scan.scan_tree(warehouse, needles(person, key))
    rows = person_frame(spark, person, key)
    present = [table for table in PERSON_CONDITIONS if table_exists(warehouse, table)]
    # Two tables at a time: a read of a version spends most of its time on the driver
    # (replaying the log to that version, planning), which leaves a core idle.
    with ThreadPoolExecutor(max_workers=2) as pool:
        read = pool.map(lambda table: _time_travel(spark, warehouse, table, rows), present)
        history = dict(zip(present, read, strict=True))
    returning = sum(len(h["versions_returning_person"]) for h in history.values())
    return {
        "files_read": scanned.files,
        "bytes_read": scanned.bytes_read,
        "files_by_kind": dict(scanned.by_kind),
        "unreadable_files": list(scanned.unreadable),
        "findings": [f.__dict__ for f in scanned.findings],
        "time_travel": history,
        "passed": not scanned.findings and not scanned.unreadable and returning == 0,
    }


_GONE = ("FILE_NOT_EXIST", "FileNotFoundException", "DELTA_FILE_NOT_FOUND", "VersionNotFound")


def _time_travel(
    spark: SparkSession, warehouse: Path, table: str, person: DataFrame
) -> dict[str, Any]:
    """Read the versions of `table` for the person's rows, newest first.

    A version reads a set of files, each with its deletion vector, and its rows are theirs: a
    version whose every file (and vector) a version already read without the person also
    reads holds no row of the person, and is not read again (after an erasure, most earlier
    versions of an append-only table are such subsets of the latest). A version whose data
    files the log says are gone (vacuumed) is unreadable and is not read.
    """
    path = warehouse / table
    latest = delta_log.table_version(path) or 0
    files = delta_log.data_files_by_version(path)
    returning: list[int] = []
    unreadable: list[int] = []
    read = 0
    without_person: set[tuple[str, str]] = set()
    for version in range(latest, -1, -1):
        if files is not None:
            if files[version] <= without_person:
                continue
            if not all((path / unquote(f)).exists() for f, _vector in files[version]):
                unreadable.append(version)
                continue
        try:
            frame = spark.read.format("delta").option("versionAsOf", version).load(str(path))
            rows = _persons_rows(frame, person, table).count()
        except Exception as exc:  # a version whose files were vacuumed cannot be read
            if not any(marker in str(exc) for marker in _GONE):
                raise
            unreadable.append(version)
            continue
        read += 1
        if rows:
            returning.append(version)
        elif files is not None:
            without_person |= files[version]
    return {
        "versions": latest + 1,
        "versions_read": read,
        "versions_unreadable": sorted(unreadable),
        "versions_returning_person": sorted(returning),
    }
