"""Reading the landing files as `pipeline.run.runner` reads them (`bronze.event_lines`); no
transformation."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.transforms import bronze
from pipeline.transforms.schemas import USER_CHANGE_SCHEMA

__all__ = [
    "bronze_event_stream",
    "user_change_files",
    "user_change_stream",
]


def user_change_stream(spark: SparkSession, path: str) -> DataFrame:
    """The user CDC files as a stream of `USER_CHANGE_SCHEMA` rows."""
    return (
        spark.readStream.schema(USER_CHANGE_SCHEMA).option("recursiveFileLookup", "true").json(path)
    )


def user_change_files(spark: SparkSession, path: str) -> DataFrame:
    """All the user CDC files, as one batch of `USER_CHANGE_SCHEMA` rows."""
    return spark.read.schema(USER_CHANGE_SCHEMA).option("recursiveFileLookup", "true").json(path)


def bronze_event_stream(
    spark: SparkSession, events_path: str, *, from_table: bool, table: str
) -> DataFrame:
    """Bronze rows for a flow that deduplicates them: the bronze table, or the same rows
    parsed again from the landing files where the engine cannot deduplicate a dataset of its
    own pipeline (see `Capabilities.deduplicates_datasets`).
    """
    if from_table:
        return spark.readStream.table(table)
    lines = bronze.parse_lines(bronze.event_lines(spark, events_path))
    return bronze.bronze_rows(lines, ingested_at=F.current_timestamp())
