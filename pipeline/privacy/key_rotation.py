"""Key rotation (`clickstream rotate-key`): every pseudonym re-keyed from the current PII key to
a new one, so that joins still hold, then the old pseudonyms purged from the files.

A keyed hash cannot be re-keyed without its input, so the clear values come from where the
warehouse keeps them: bronze's typed `user` columns (every event that reached silver) and the
landing user-change files (every change in the change log). From them one mapping, old hash ->
new hash, re-keys the silver tables and the user change log column by column; gold is then
recomputed from them (`refresh_gold`), so `user_sk`, facts and sessions follow. A pseudonym
without its clear value anywhere stops the rotation before anything is written.

`pipeline.privacy.key_registry` records the rotation in progress and, per table, the key version of
its pseudonyms: a rotation killed midway is finished by running it again (tables already
re-keyed are skipped), and no run may write until it has finished. Afterwards runs must use
the new key; the old one is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import PiiKey, require_classic
from pipeline.errors import ConfigurationError, DamagedStateError, PiiKeyMismatchError
from pipeline.observe.event_log import new_update_id, recorded_update
from pipeline.privacy import key_registry, pii_scan
from pipeline.run import run_state
from pipeline.run.gold_stage import refresh_gold
from pipeline.run.vacuum import (
    DEFAULT_RETENTION_HOURS,
    tables_with_removed_files,
    vacuum_tables,
)
from pipeline.run.writer_lock import writer_lock
from pipeline.storage import delta_log
from pipeline.storage.tables import table_path
from pipeline.table_names import BRONZE_EVENTS, GOLD_TABLES, PSEUDONYMIZED_TABLES, USER_CHANGES_DIR
from pipeline.transforms.pseudonymize import hmac_sha256, key_frame, with_key
from pipeline.transforms.schemas import USER_CHANGE_SCHEMA

__all__ = ["HASH_COLUMNS", "RotationResult", "rotate_key"]

RUNNER = "clickstream rotate-key"
"""The program a key rotation's update names in the event log."""

HASH_COLUMNS = ("user_key", "email_hash", "full_name_hash", "ip_hash")
"""The keyed-hash columns a table may have."""


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did."""

    old_version: int
    new_version: int
    pseudonyms: int
    """Distinct old pseudonyms re-keyed (the mapping's size)."""
    rows_rekeyed: dict[str, int]
    files_deleted: int
    retention_hours: int
    scan: pii_scan.ScanResult
    """The search of every file for the old pseudonyms."""


def _clear_values(spark: SparkSession, landing: Path, warehouse: Path) -> DataFrame:
    """Every clear value a pseudonym of the warehouse may have been made from."""
    frames: list[DataFrame] = []
    if delta_log.table_version(warehouse / BRONZE_EVENTS) is not None:
        bronze = spark.read.format("delta").load(table_path(warehouse, BRONZE_EVENTS))
        frames += [bronze.select(F.col(f"user.{f}").alias("value")) for f in _EVENT_FIELDS]
    changes_dir = landing / USER_CHANGES_DIR
    if changes_dir.is_dir() and any(changes_dir.iterdir()):
        changes = (
            spark.read.schema(USER_CHANGE_SCHEMA)
            .option("recursiveFileLookup", "true")
            .json(str(changes_dir))
        )
        frames += [changes.select(F.col(f).alias("value")) for f in _CHANGE_FIELDS]
    if not frames:
        return spark.createDataFrame([], "value string")
    values = reduce(DataFrame.unionByName, frames)
    return values.where(F.col("value").isNotNull()).distinct()


_EVENT_FIELDS = ("user_id", "email", "full_name", "ip")
_CHANGE_FIELDS = ("user_id", "email", "full_name")


def _mapping(values: DataFrame, old_key: PiiKey, new_key: PiiKey) -> DataFrame:
    """old -> new: each clear value's hash under the old key and under the new one."""
    spark = values.sparkSession
    old = with_key(values, key_frame(spark, old_key)).select(
        "value", hmac_sha256(F.col("value")).alias("old")
    )
    both = with_key(old, key_frame(spark, new_key)).select(
        "old", hmac_sha256(F.col("value")).alias("new")
    )
    return both.distinct().localCheckpoint()


def _rekeyed(table: DataFrame, mapping: DataFrame) -> DataFrame:
    """`table` with every hash column replaced through `mapping` (null where unmapped)."""
    columns = table.columns
    lookup = F.broadcast(mapping.select(F.col("old").alias("__old"), F.col("new").alias("__new")))
    rekeyed = table
    for column in (c for c in HASH_COLUMNS if c in columns):
        rekeyed = rekeyed.join(lookup, F.col(column) == F.col("__old"), "left").select(
            *[F.col("__new").alias(c) if c == column else F.col(c) for c in columns]
        )
    return rekeyed


def _unmapped(table: DataFrame, mapping: DataFrame) -> dict[str, int]:
    """Per hash column, the non-null pseudonyms `mapping` cannot re-key."""
    olds = mapping.select(F.col("old").alias("__old"))
    found = {}
    for column in (c for c in HASH_COLUMNS if c in table.columns):
        missing = (
            table.where(F.col(column).isNotNull())
            .join(F.broadcast(olds), F.col(column) == F.col("__old"), "left_anti")
            .count()
        )
        if missing:
            found[column] = missing
    return found


def _silver_and_log(warehouse: Path) -> list[str]:
    return [
        t
        for t in PSEUDONYMIZED_TABLES
        if t not in GOLD_TABLES and delta_log.table_version(warehouse / t) is not None
    ]


def _start(warehouse: Path, old_key: PiiKey, new_key: PiiKey) -> key_registry.KeyRegistry:
    """The registry with the rotation begun (or the one in progress, for the same keys)."""
    registry = key_registry.load(warehouse)
    if registry is None or registry.rotating_to is None:
        registry = key_registry.admit(warehouse, old_key)
        if key_registry.check_value(new_key) == registry.current.check:
            raise ConfigurationError(
                "The new PII key is the current key: generate a new one, e.g. python -c "
                "'import secrets; print(secrets.token_hex(32))' > new.key && chmod 600 new.key"
            )
        if registry.version_of(new_key) is not None:
            raise ConfigurationError(
                "The new PII key is a key this warehouse retired: generate a new one."
            )
        registry = registry.begin_rotation(new_key)
        key_registry.save(warehouse, registry)
        return registry
    assert registry.rotating_to is not None
    if registry.version_of(old_key) != registry.current:
        raise PiiKeyMismatchError(
            "A rotation is in progress and the current PII key given is not the warehouse's "
            f"key version {registry.current.version}: pass the key the rotation started from."
        )
    if key_registry.check_value(new_key) != registry.rotating_to.check:
        raise PiiKeyMismatchError(
            f"A rotation to key version {registry.rotating_to.version} is in progress with "
            "another new key: pass the --new-key-file it started with, to finish it."
        )
    return registry


def rotate_key(
    spark: SparkSession,
    *,
    landing: Path,
    warehouse: Path,
    old_key: PiiKey,
    new_key: PiiKey,
    purge_now: bool = False,
    progress: Callable[[str], None] | None = None,
    wait_seconds: float = 0.0,
) -> RotationResult:
    """Re-key every pseudonym of the warehouse from `old_key` to `new_key` (module docstring).

    Raises:
        PiiKeyMismatchError: `old_key` is not the warehouse's current key, or a rotation to
            another key is in progress.
        ConfigurationError: `new_key` is the current key or a retired one.
        DamagedStateError: a pseudonym has no clear value to re-key from; nothing was written.
        WarehouseBusyError: a run writes the warehouse.
    """
    require_classic(spark, "`clickstream rotate-key`")
    report = progress or (lambda _message: None)
    warehouse, landing = warehouse.resolve(), landing.resolve()
    with (
        writer_lock(warehouse, wait_seconds=wait_seconds, notify=report),
        recorded_update(warehouse, new_update_id(), flows=(), full_refresh=False, runner=RUNNER),
    ):
        registry = _start(warehouse, old_key, new_key)
        assert registry.rotating_to is not None
        target = registry.rotating_to.version
        versions_before = run_state.table_versions(warehouse)
        report("mapping every clear value in bronze and the landing user changes to both keys")
        mapping = _mapping(_clear_values(spark, landing, warehouse), old_key, new_key)
        pending = [t for t in _silver_and_log(warehouse) if registry.tables.get(t) != target]
        frames = {
            t: spark.read.format("delta").load(table_path(warehouse, t)).localCheckpoint()
            for t in pending
        }
        for table, frame in frames.items():
            unmapped = _unmapped(frame, mapping)
            if unmapped:
                raise DamagedStateError(
                    f"{table} holds pseudonyms with no clear value left to re-key them from "
                    f"({unmapped}): bronze or the landing user changes no longer hold their "
                    "input. Nothing was re-keyed; restore the missing input, or erase those "
                    "rows first."
                )
        rows: dict[str, int] = {}
        for table, frame in frames.items():
            report(f"{table}: re-keying {', '.join(c for c in HASH_COLUMNS if c in frame.columns)}")
            rekeyed = _rekeyed(frame, mapping).localCheckpoint()
            rekeyed.write.format("delta").mode("overwrite").save(table_path(warehouse, table))
            rows[table] = frame.count()
            registry = registry.table_rekeyed(table)
            key_registry.save(warehouse, registry)
        report("gold: recomputing every gold table from the re-keyed silver and change log")
        refresh_gold(spark, warehouse)
        retention = 0 if purge_now else DEFAULT_RETENTION_HOURS
        report(f"VACUUM at {retention} hours' retention")
        deleted = vacuum_tables(
            spark, warehouse, retention, tables_with_removed_files(warehouse, retention)
        )
        old_version = registry.current.version
        key_registry.save(warehouse, registry.end_rotation())
        run_state.record_maintenance(warehouse, versions_before)
        report("verifying: no pseudonym made with the old key in any file")
        olds = frozenset(row.old for row in mapping.select("old").collect())
        scan = pii_scan.scan_tree(warehouse, (), hex_tokens=olds)
        return RotationResult(
            old_version=old_version,
            new_version=target,
            pseudonyms=len(olds),
            rows_rekeyed=rows,
            files_deleted=deleted,
            retention_hours=retention,
            scan=scan,
        )
