"""Erasure and key rotation on real Delta tables, proven by reading every file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline import table_names
from pipeline.config import PiiKey
from pipeline.errors import PiiKeyMismatchError, UnknownPersonError
from pipeline.privacy import erasure, key_rotation, pii_scan
from pipeline.run import run_state, runner
from pipeline.storage import delta_log, tables
from pipeline.transforms.pseudonymize import keyed_hash
from scenarios import generator
from scenarios.scenario_invariants import facts_joining_a_user, gold_equals_full_refresh

PERSON = "u-000002"
NEW_KEY = PiiKey(b"rotated-test-key-0123456789abcdef")


def _landing(root: Path, events: int, seed: int) -> tuple[Path, str]:
    """Generated landing files plus lines only the raw zone holds: a corrupt line and a
    drifted one naming the person, a corrupt line of nobody; returns the person's e-mail."""
    landing = root / "landing"
    generator.write_landing(landing, events=events, seed=seed, files=2)
    changes = [
        orjson.loads(line)
        for path in sorted((landing / table_names.USER_CHANGES_DIR).iterdir())
        for line in path.read_bytes().splitlines()
    ]
    email = next(c["email"] for c in changes if c["user_id"] == PERSON)
    extra = [
        b'{"event_id": "corrupt-1", "user": {"user_id": "' + PERSON.encode() + b'", "em',
        orjson.dumps(
            {
                "event_id": "drift-1",
                "event_ts": "2026-11-01T10:00:00Z",
                "contact": {"Email": email},
            }
        ),
        b"not json at all",
    ]
    (landing / table_names.EVENTS_DIR / "extra.json").write_bytes(b"\n".join(extra) + b"\n")
    return landing, email


def _keys(spark: SparkSession, warehouse: Path, table: str, column: str) -> Counter[str]:
    frame = tables.read_table(spark, warehouse, table)
    return Counter(str(row[0]) for row in frame.select(column).collect())


_KEYED = {
    table_names.BRONZE_EVENTS: "event_id",
    table_names.BRONZE_QUARANTINE: "raw_line",
    table_names.SILVER_EVENTS: "event_id",
    table_names.GOLD_FACT_EVENTS: "event_id",
    table_names.GOLD_SESSIONS: "session_id",
}


def _landing_holds(landing: Path, *values: str) -> bool:
    return any(
        value.encode() in (landing / name).read_bytes()
        for name in run_state.landing_files(landing)
        for value in values
    )


def test_forget_erases_a_person_from_every_file_and_leaves_everyone_else(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    landing, email = _landing(tmp_path, events=400, seed=5)
    warehouse = tmp_path / "warehouse"
    runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    versions = run_state.table_versions(warehouse)
    with pytest.raises(UnknownPersonError, match="u-999999"):
        erasure.forget(
            spark, landing=landing, warehouse=warehouse, pii_key=pii_key, user_id="u-999999"
        )
    assert run_state.table_versions(warehouse) == versions  # nothing changed
    before = {t: _keys(spark, warehouse, t, c) for t, c in _KEYED.items()}

    def killed_before_bronze(message: str) -> None:
        if message.startswith(f"{table_names.BRONZE_EVENTS}:"):
            raise KeyboardInterrupt("killed with silver and gold erased, bronze not yet")

    with pytest.raises(KeyboardInterrupt):
        erasure.forget(
            spark,
            landing=landing,
            warehouse=warehouse,
            pii_key=pii_key,
            user_id=PERSON,
            progress=killed_before_bronze,
        )
    [unfinished] = (warehouse / erasure.ERASURE_DIR).glob("*.json")
    assert orjson.loads(unfinished.read_bytes())["status"] == "in progress"

    # Run again, it finishes. Without --purge-now and --include-landing the rows are gone from
    # the tables, but the verifier still finds the person: in the removed files, in earlier
    # versions, in the landing files.
    said: list[str] = []
    kept = erasure.forget(
        spark,
        landing=landing,
        warehouse=warehouse,
        pii_key=pii_key,
        user_id=PERSON,
        progress=said.append,
    )
    document = kept.document
    assert kept.certificate == unfinished
    assert document["status"] == "completed"
    assert not kept.verified
    assert {f["path"].split("/")[0] for f in document["verification"]["findings"]} >= {
        table_names.BRONZE_EVENTS,
        table_names.SILVER_EVENTS,
    }
    # Every version up to the erasure's start returns the person (the verifier skips a version
    # only when a version it read without the person holds all its files), none after.
    returning = document["verification"]["time_travel"][table_names.SILVER_EVENTS]
    began = document["versions_before"][table_names.SILVER_EVENTS]
    files = delta_log.data_files_by_version(warehouse / table_names.SILVER_EVENTS)
    assert files is not None
    assert returning["versions_returning_person"] == [v for v in range(began + 1) if files[v]]
    assert document["landing"]["still_holding"]
    person_rows = document["rows_of_person"]
    assert person_rows[table_names.BRONZE_QUARANTINE] == 1  # the corrupt line naming the id
    assert (
        person_rows[table_names.BRONZE_EVENTS] == person_rows[table_names.SILVER_EVENTS] + 1
    )  # drift
    for table, column in _KEYED.items():
        after = _keys(spark, warehouse, table, column)
        removed = before[table] - after
        assert not after - before[table], f"{table} gained rows"
        assert sum(removed.values()) == person_rows[table], table
    assert _keys(spark, warehouse, table_names.BRONZE_QUARANTINE, "raw_line") == Counter(
        {"not json at all": 1}
    )
    assert gold_equals_full_refresh(spark, warehouse).passed

    # Run again with both: the removed files are vacuumed, the landing lines rewritten.
    purged = erasure.forget(
        spark,
        landing=landing,
        warehouse=warehouse,
        pii_key=pii_key,
        user_id=PERSON,
        purge_now=True,
        include_landing=True,
    )
    assert purged.verified, purged.document["verification"]
    assert purged.certificate.is_file()
    assert orjson.loads(purged.certificate.read_bytes())["status"] == "completed"
    assert purged.document["verification"]["files_by_kind"]["parquet"] > 0
    assert not _landing_holds(landing, PERSON, email)
    assert _landing_holds(landing, "not json at all")
    rewritten = {entry["file"] for entry in purged.document["landing"]["rewritten"]}
    assert "events/extra.json" in rewritten
    for secret in (pii_key.reveal().decode(), PERSON, email):
        assert not any(secret in line for line in said)
        assert secret not in purged.certificate.read_text()
    key = pii_scan.Needle("key", pii_key.reveal().decode())
    assert not pii_scan.scan_tree(warehouse, [key]).findings

    # The checkpoints do not read the rewritten files as new; a new file is read as usual.
    again = runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    assert again.skipped
    generator.write_landing(landing, events=60, seed=6, files=1)  # one user: u-000001
    later = runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    bronze_before = sum(before[table_names.BRONZE_EVENTS].values())
    expected = bronze_before - person_rows[table_names.BRONZE_EVENTS] + 60
    assert later.rows(table_names.BRONZE_EVENTS) == expected


def test_rotate_key_rekeys_every_pseudonym_and_refuses_the_old_key(
    spark: SparkSession, tmp_path: Path, pii_key: PiiKey
) -> None:
    landing, _ = _landing(tmp_path, events=300, seed=7)
    warehouse = tmp_path / "warehouse"
    runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    silver = tables.read_table(spark, warehouse, table_names.SILVER_EVENTS)
    old = frozenset(
        row[0]
        for column in key_rotation.HASH_COLUMNS
        for row in silver.select(column).where(F.col(column).isNotNull()).distinct().collect()
    )
    assert pii_scan.scan_tree(warehouse, (), hex_tokens=old).findings  # the search can find
    joined = facts_joining_a_user(spark, warehouse)

    def stop_midway(message: str) -> None:
        if message.startswith(table_names.SILVER_QUARANTINE):
            raise KeyboardInterrupt("killed between two tables")

    with pytest.raises(KeyboardInterrupt):
        key_rotation.rotate_key(
            spark,
            landing=landing,
            warehouse=warehouse,
            old_key=pii_key,
            new_key=NEW_KEY,
            progress=stop_midway,
        )
    with pytest.raises(PiiKeyMismatchError, match="did not finish"):
        runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    result = key_rotation.rotate_key(
        spark,
        landing=landing,
        warehouse=warehouse,
        old_key=pii_key,
        new_key=NEW_KEY,
        purge_now=True,
    )
    assert (result.old_version, result.new_version) == (1, 2)
    assert result.pseudonyms >= len(old)
    assert not result.scan.findings
    assert not pii_scan.scan_tree(warehouse, (), hex_tokens=old).findings

    bronze = tables.read_table(spark, warehouse, table_names.BRONZE_EVENTS)
    pairs = (
        tables.read_table(spark, warehouse, table_names.SILVER_EVENTS)
        .join(bronze.select("event_id", "user.user_id"), "event_id")
        .select("user_id", "user_key")
        .distinct()
        .collect()
    )
    assert pairs
    assert all(
        row.user_key == (None if row.user_id is None else keyed_hash(NEW_KEY, row.user_id))
        for row in pairs
    )
    assert facts_joining_a_user(spark, warehouse) == joined  # the joins still hold
    assert gold_equals_full_refresh(spark, warehouse).passed

    with pytest.raises(PiiKeyMismatchError, match="retired") as refused:
        runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=pii_key)
    assert pii_key.reveal().decode() not in str(refused.value)
    generator.write_landing(landing, events=60, seed=8, files=1)
    runner.run_pipeline(spark, landing=landing, warehouse=warehouse, pii_key=NEW_KEY)
    assert facts_joining_a_user(spark, warehouse) >= joined
    secrets = [pii_scan.Needle("old key", pii_key.reveal().decode())]
    secrets.append(pii_scan.Needle("new key", NEW_KEY.reveal().decode()))
    assert not pii_scan.scan_tree(warehouse, secrets).findings
