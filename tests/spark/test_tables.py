"""The plain-Python Delta log reader against logs Delta itself wrote: checkpoints, deletion
vectors, markers of exactly-once appends."""

from __future__ import annotations

from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.storage import delta_log
from pipeline.storage.delta_tables import DELETION_VECTORS, append_once, create_table_if_absent


def test_counts_from_the_log_equal_spark_counts_through_checkpoints_and_deletes(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = tmp_path / "t"
    rows = spark.range(10).select(F.col("id"), (F.col("id") % 3).alias("k"))
    create_table_if_absent(spark, str(path), rows.schema, properties=DELETION_VECTORS)
    for _ in range(11):  # past Delta's checkpoint interval of 10 commits
        rows.write.format("delta").mode("append").save(str(path))
    DeltaTable.forPath(spark, str(path)).delete("k = 1")  # deletion vectors, no rewrite
    assert any(path.glob("_delta_log/*.checkpoint.parquet"))
    state = delta_log.read_state(path)
    assert state is not None
    assert state.rows == spark.read.format("delta").load(str(path)).count() == 11 * 7
    assert state.version == delta_log.table_version(path) == 12


def test_an_append_once_is_skipped_when_its_batch_is_in_the_log(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "t")
    rows = spark.range(3)
    assert append_once(rows, path, query="q", batch_id=0)
    assert append_once(rows, path, query="q", batch_id=1)
    assert not append_once(rows, path, query="q", batch_id=1)  # a replay
    assert append_once(rows, path, query="other", batch_id=0)
    assert spark.read.format("delta").load(path).count() == 9
    assert delta_log.committed_batch(Path(path), "q") == 1
