"""Invariants that compare a pipeline run with what a fault `Injection` says must happen.

Each function reads the warehouse with Spark, compares it with the injection's expectations
and returns `Verdict`s whose evidence names the first offending ids and counts. Scenario data
is small (thousands of rows), so sets of ids are collected to the driver.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from pipeline import table_names
from pipeline.run import gold_stage, run_state
from pipeline.storage import delta_log, tables
from pipeline.transforms import gold
from pipeline.transforms.schemas import PERSONAL_COLUMNS, USER_CHANGE_SCHEMA
from scenarios.faults import Injection
from scenarios.invariants import Verdict

__all__ = [
    "bronze_split",
    "clock_instants",
    "dimension_equals_batch",
    "drift_recoverable",
    "duplicate_count",
    "facts_joining_a_user",
    "first_payload_kept",
    "gold_equals_full_refresh",
    "multiset_difference",
    "no_planted_pii",
    "placement",
]

_SHOWN = 3


def _ids(spark: SparkSession, warehouse: Path, table: str) -> set[str]:
    if tables.count_rows(spark, warehouse, table) == 0:
        return set()
    frame = tables.read_table(spark, warehouse, table).select("event_id")
    return {row.event_id for row in frame.collect()}


def _some(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    more = f" (+{len(listed) - _SHOWN} more)" if len(listed) > _SHOWN else ""
    return ", ".join(listed[:_SHOWN]) + more


def _subset(name: str, expected: Iterable[str], actual: set[str], table: str) -> Verdict:
    expected = set(expected)
    missing = expected - actual
    return Verdict(
        name,
        not missing,
        f"{len(expected) - len(missing):,} of {len(expected):,} expected ids are in {table}"
        + (f"; missing: {_some(missing)}" if missing else ""),
    )


def placement(spark: SparkSession, warehouse: Path, injection: Injection) -> list[Verdict]:
    """Every id where the injection says it must be, and silver holds nothing unexpected."""
    silver = _ids(spark, warehouse, table_names.SILVER_EVENTS)
    late = _ids(spark, warehouse, table_names.SILVER_LATE_EVENTS)
    quarantined = _ids(spark, warehouse, table_names.SILVER_QUARANTINE)
    unexpected = silver - injection.silver_ids - injection.maybe_silver_ids
    verdicts = [
        _subset("expected events reached silver", injection.silver_ids, silver, "silver_events"),
        Verdict(
            "silver holds no event it should not",
            not unexpected,
            f"{len(unexpected):,} unexpected ids"
            + (f": {_some(unexpected)}" if unexpected else ""),
        ),
    ]
    if injection.late_ids:
        wrongly_kept = injection.late_ids & silver
        verdicts.append(
            _subset("late events are kept as late", injection.late_ids, late, "silver_late_events")
        )
        verdicts.append(
            Verdict(
                "late events are not in silver",
                not wrongly_kept,
                f"{len(wrongly_kept):,} late ids in silver_events"
                + (f": {_some(wrongly_kept)}" if wrongly_kept else ""),
            )
        )
    if injection.silver_quarantine_ids:
        verdicts.append(
            _subset(
                "unplaceable events are quarantined",
                injection.silver_quarantine_ids,
                quarantined,
                "silver_quarantine",
            )
        )
    return verdicts


def bronze_split(spark: SparkSession, warehouse: Path, injection: Injection) -> Verdict:
    """bronze_quarantine holds at least the certain non-objects; exactly them when predictable."""
    quarantined = tables.count_rows(spark, warehouse, table_names.BRONZE_QUARANTINE)
    events = tables.count_rows(spark, warehouse, table_names.BRONZE_EVENTS)
    if injection.unpredicted == 0:
        passed = quarantined == injection.quarantined
        relation = "="
    else:
        passed = quarantined >= injection.quarantined
        relation = ">="
    return Verdict(
        "corrupt lines are quarantined in bronze",
        passed,
        f"bronze_quarantine {quarantined:,} {relation} {injection.quarantined:,} injected "
        f"non-objects ({injection.unpredicted:,} corpus/odd lines unpredicted); "
        f"bronze_events {events:,}",
    )


def duplicate_count(duplicates_dropped: int, injection: Injection) -> Verdict:
    """The duplicates the pipeline dropped are exactly those injected."""
    return Verdict(
        "dropped duplicates = injected duplicates",
        duplicates_dropped == injection.duplicate_rows,
        f"{duplicates_dropped:,} dropped, {injection.duplicate_rows:,} injected",
    )


def _at_path(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


_MISSING = object()


def drift_recoverable(spark: SparkSession, warehouse: Path, injection: Injection) -> Verdict:
    """Every drifted value is in its typed column or recoverable from `_rescued_data`."""
    if not injection.drift:
        return Verdict("drifted fields are recoverable", True, "no drift injected")
    ids = {case.event_id for case in injection.drift}
    bronze = tables.read_table(spark, warehouse, table_names.BRONZE_EVENTS)
    rows = {
        row.event_id or _rescued_id(row._rescued_data): row
        for row in bronze.where(
            F.col("event_id").isin(list(ids)) | F.col("_rescued_data").isNotNull()
        ).collect()
    }
    wrong: list[str] = []
    for case in injection.drift:
        row = rows.get(case.event_id)
        if row is None:
            wrong.append(f"{case.kind}: {case.event_id} not in bronze")
            continue
        record = row.asDict(recursive=True)
        rescued = orjson.loads(record["_rescued_data"]) if record["_rescued_data"] else {}
        typed = _at_path(record, case.path)
        if case.where == "rescued":
            ok = _at_path(rescued, case.path) == case.value and typed in (None, _MISSING)
        elif case.where == "typed":
            expected = case.typed_text if case.typed_text is not None else case.value
            ok = typed == expected
        else:
            ok = typed in (None, _MISSING) and _at_path(rescued, case.path) is _MISSING
        if not ok:
            wrong.append(f"{case.kind} at {'.'.join(case.path)} of {case.event_id}")
    return Verdict(
        "drifted fields are recoverable",
        not wrong,
        f"{len(injection.drift) - len(wrong):,} of {len(injection.drift):,} drifted values where "
        "expected (typed column or _rescued_data)"
        + (f"; wrong: {wrong[:_SHOWN]}" if wrong else ""),
    )


def _rescued_id(rescued: str | None) -> str | None:
    """The event id of a row whose `event_id` itself was rescued (a case-only rename)."""
    if not rescued:
        return None
    document = orjson.loads(rescued)
    for key, value in document.items():
        if key.lower() == "event_id" and isinstance(value, str):
            return value
    return None


def clock_instants(spark: SparkSession, warehouse: Path, injection: Injection) -> Verdict:
    """Events with re-zoned or re-formatted timestamps reach silver at their true instant."""
    cases = [case for case in injection.clock if case.expected == "silver"]
    if not cases:
        return Verdict("timestamps parse to the right instant", True, "no clock cases")
    silver = tables.read_table(spark, warehouse, table_names.SILVER_EVENTS)
    # Compare as UTC text: the session time zone is UTC, the Python process's may not be.
    found = {
        row.event_id: row.utc
        for row in silver.where(F.col("event_id").isin([c.event_id for c in cases]))
        .select("event_id", F.date_format("event_time", _UTC_FORMAT).alias("utc"))
        .collect()
    }
    wrong = [
        f"{case.kind}: {case.event_ts!r} -> {found.get(case.event_id)}"
        for case in cases
        if case.parsed_instant is None or found.get(case.event_id) != _utc_text(case.parsed_instant)
    ]
    return Verdict(
        "timestamps parse to the right instant",
        not wrong,
        f"{len(cases) - len(wrong):,} of {len(cases):,} re-zoned/re-formatted timestamps at their "
        "true UTC instant" + (f"; wrong: {wrong[:_SHOWN]}" if wrong else ""),
    )


_UTC_FORMAT = "yyyy-MM-dd HH:mm:ss.SSS"


def _utc_text(instant: datetime) -> str:
    return (
        instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.")
        + f"{instant.microsecond // 1000:03d}"
    )


def first_payload_kept(spark: SparkSession, warehouse: Path, injection: Injection) -> Verdict:
    """For an id sent again with another payload, silver keeps the first one."""
    if not injection.conflicts:
        return Verdict("silver keeps the first payload", True, "no conflicting payloads")
    silver = tables.read_table(spark, warehouse, table_names.SILVER_EVENTS)
    urls = {
        row.event_id: row.page_url
        for row in silver.where(F.col("event_id").isin([c.event_id for c in injection.conflicts]))
        .select("event_id", "page_url")
        .collect()
    }
    wrong = [c.event_id for c in injection.conflicts if urls.get(c.event_id) != c.kept_page_url]
    return Verdict(
        "silver keeps the first payload",
        not wrong,
        f"{len(injection.conflicts) - len(wrong):,} of {len(injection.conflicts):,} conflicting "
        "ids keep the first payload" + (f"; wrong: {_some(wrong)}" if wrong else ""),
    )


def _string_cells(frame: DataFrame) -> list[str]:
    columns = [f.name for f in frame.schema.fields if isinstance(f.dataType, StringType)]
    if not columns:
        return []
    joined = frame.select(F.concat_ws("\u0001", *[F.col(c) for c in columns]).alias("text"))
    return [row.text for row in joined.collect()]


def no_planted_pii(
    spark: SparkSession, warehouse: Path, table_names: Sequence[str], values: Iterable[str]
) -> Verdict:
    """No planted personal value appears inside any string of the given tables."""
    planted = sorted(set(values), key=len, reverse=True)
    if not planted:
        return Verdict("no planted PII in silver or gold", True, "nothing planted")
    pattern = re.compile("|".join(re.escape(value) for value in planted))
    leaks: list[str] = []
    for table in table_names:
        if tables.count_rows(spark, warehouse, table) == 0:
            continue
        for text in _string_cells(tables.read_table(spark, warehouse, table)):
            match = pattern.search(text)
            if match:
                leaks.append(f"{table}: {match.group()[:3]}***")
    return Verdict(
        "no planted PII in silver or gold",
        not leaks,
        f"{len(planted):,} planted values (clear and percent-encoded) searched as substrings of "
        f"every string in {', '.join(table_names)}"
        + (f"; found {len(leaks):,} times, e.g. {leaks[:_SHOWN]}" if leaks else ": none found"),
    )


def dimension_equals_batch(
    spark: SparkSession, warehouse: Path, landing: Path, keys: DataFrame
) -> list[Verdict]:
    """`gold_dim_user` built batch by batch equals the SCD2 result over all changes at once.

    Also checks the SCD2 invariant that each user has at most one open version.
    """
    raw = (
        spark.read.schema(USER_CHANGE_SCHEMA)
        .option("recursiveFileLookup", "true")
        .json(str(landing / table_names.USER_CHANGES_DIR))
    )
    expected = gold.dim_user(gold.user_changes(raw, keys=keys))
    actual = tables.read_table(spark, warehouse, table_names.GOLD_DIM_USER).select(
        *expected.columns
    )
    missing = expected.exceptAll(actual).count()
    extra = actual.exceptAll(expected).count()
    open_versions = (
        actual.where(F.col("__END_AT").isNull() & (F.col(gold.USER_SK) != gold.UNKNOWN_KEY))
        .groupBy(gold.USER_KEY)
        .count()
        .where(F.col("count") > 1)
        .count()
    )
    return [
        Verdict(
            "incremental SCD2 dimension = batch apply_changes over all changes",
            missing == 0 and extra == 0,
            f"{expected.count():,} expected versions; {missing:,} missing, {extra:,} unexpected "
            "in gold_dim_user",
        ),
        Verdict(
            "at most one open version per user",
            open_versions == 0,
            f"{open_versions:,} users with more than one open version",
        ),
    ]


def multiset_difference(actual: DataFrame, expected: DataFrame) -> list[str]:
    """The rows (first columns shown) one frame holds more often than the other."""
    columns = sorted(expected.columns)
    counts = [
        Counter(tuple(row) for row in frame.select(*columns).collect())
        for frame in (actual, expected)
    ]
    extra, missing = counts[0] - counts[1], counts[1] - counts[0]
    return [
        f"{label} {dict(zip(columns[:4], row[:4], strict=True))}"
        for label, rows in (("extra", extra), ("missing", missing))
        for row in list(rows)[:_SHOWN]
    ]


def gold_equals_full_refresh(spark: SparkSession, warehouse: Path) -> Verdict:
    """Every incrementally maintained gold table equals its full refresh, row for row.

    The full refresh (`pipeline.run.gold_stage.full_refresh`) recomputes gold from all of silver
    and the user change log, as Lakeflow's full refresh of a materialized view does; the
    tables the runs maintained batch by batch must hold exactly the same multiset of rows.
    Both sides are collected (scenario tables are small): per table, two small Spark jobs
    cost less than one job comparing them on the cluster.
    """
    differences: list[str] = []
    compared: list[str] = []
    pairs: dict[str, tuple[DataFrame, DataFrame]] = {}
    for table, expected in gold_stage.full_refresh(spark, warehouse).items():
        if not tables.table_exists(warehouse, table):
            differences.append(f"{table} missing")
            continue
        actual = tables.read_table(spark, warehouse, table)
        if sorted(actual.columns) != sorted(expected.columns):
            differences.append(f"{table} columns {sorted(actual.columns)}")
            continue
        compared.append(table)
        pairs[table] = (actual, expected)
    with ThreadPoolExecutor(max_workers=2) as pool:  # the jobs are short: overlap them
        unequal = dict(
            zip(
                pairs,
                pool.map(lambda pair: multiset_difference(*pair), pairs.values()),
                strict=True,
            )
        )
    differences += [f"{table}: {rows}" for table, rows in unequal.items() if rows]
    return Verdict(
        "incremental gold = full refresh from silver and the change log",
        not differences,
        f"differences: {differences}"
        if differences
        else f"{len(compared)} tables equal row for row: {', '.join(compared)}",
    )


def facts_joining_a_user(spark: SparkSession, warehouse: Path) -> int:
    """Facts that join a version of `gold_dim_user` (not the unknown member) on `user_sk` and
    `user_key`: what must stay the same when every pseudonym is re-keyed."""
    facts = tables.read_table(spark, warehouse, table_names.GOLD_FACT_EVENTS)
    users = tables.read_table(spark, warehouse, table_names.GOLD_DIM_USER).where(
        "user_key IS NOT NULL"
    )
    return facts.join(users.select("user_sk", "user_key"), ["user_sk", "user_key"]).count()


def no_personal_statistics(warehouse: Path) -> Verdict:
    """No live file of any table keeps min/max statistics on a personal column: statistics
    are plaintext in the Delta log, and a pseudonym's range would outlive an erasure there."""
    found = {
        table: sorted(columns & PERSONAL_COLUMNS)
        for table in run_state.VERSIONED_TABLES
        if (columns := delta_log.columns_with_statistics(warehouse / table))
        and columns & PERSONAL_COLUMNS
    }
    return Verdict(
        "no table keeps statistics on a personal column",
        not found,
        f"statistics on personal columns: {found}" if found else "none, in every table's log",
    )
