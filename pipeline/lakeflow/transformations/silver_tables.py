"""Silver as streaming tables: `pipeline.transforms.silver` over `bronze_events`.

`silver_events` deduplicates within the event-time watermark and pseudonymizes PII with the
key the configuration refers to (`clickstream.pii_key_ref`); `silver_quarantine` takes the
rows that cannot be placed in time and those silver's drop rules reject; `silver_late_events`
is a materialized view of the valid rows silver never placed.
"""

from __future__ import annotations

from pyspark import pipelines as dp
from pyspark.sql import DataFrame, SparkSession

from pipeline.lakeflow import sources
from pipeline.lakeflow.capabilities import Capabilities
from pipeline.lakeflow.quality import expectations
from pipeline.lakeflow.settings import PipelineSettings
from pipeline.table_names import BRONZE_EVENTS, SILVER_EVENTS, SILVER_LATE_EVENTS, SILVER_QUARANTINE
from pipeline.transforms import silver
from pipeline.transforms.expectations import dropped_rows, evaluate
from pipeline.transforms.pseudonymize import key_frame

spark = SparkSession.active()  # the session spark-pipelines or Databricks runs this file in
settings = PipelineSettings.of(spark)
capabilities = Capabilities.of(dp)
rules = settings.expectations().get(SILVER_EVENTS, ())
keys = key_frame(spark, settings.pii_key(spark))


def bronze_to_deduplicate() -> DataFrame:
    return sources.bronze_event_stream(
        spark,
        settings.events_path(),
        from_table=capabilities.deduplicates_datasets,
        table=BRONZE_EVENTS,
    )


@dp.table(name=SILVER_EVENTS, comment="Valid events, deduplicated, PII pseudonymized.")
@expectations(dp, capabilities, rules)
def silver_events() -> DataFrame:
    return silver.silver_events(
        bronze_to_deduplicate(),
        keys=keys,
        watermark_delay=settings.watermark_delay,
        streaming=True,
    )


dp.create_streaming_table(name=SILVER_QUARANTINE, comment="Rows silver cannot take, and why.")


@dp.append_flow(target=SILVER_QUARANTINE, name="silver_unplaceable")
def silver_unplaceable() -> DataFrame:
    return silver.quarantine_rows(spark.readStream.table(BRONZE_EVENTS), keys=keys)


if any(rule.action == "drop" for rule in rules):

    @dp.append_flow(target=SILVER_QUARANTINE, name="silver_dropped_by_rules")
    def silver_dropped_by_rules() -> DataFrame:
        events = silver.silver_events(
            bronze_to_deduplicate(),
            keys=keys,
            watermark_delay=settings.watermark_delay,
            streaming=True,
        )
        return dropped_rows(evaluate(events, rules), rules)


@dp.materialized_view(name=SILVER_LATE_EVENTS, comment="Valid events later than the watermark.")
def silver_late_events() -> DataFrame:
    placed = silver.placed_events(
        spark.read.table(SILVER_EVENTS), spark.read.table(SILVER_QUARANTINE)
    )
    return silver.late_rows(spark.read.table(BRONZE_EVENTS), silver=placed, keys=keys)
