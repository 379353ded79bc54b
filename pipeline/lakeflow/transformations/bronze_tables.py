"""Bronze as streaming tables: `pipeline.transforms.bronze` over the landing event files.

Every non-blank line lands in exactly one of `bronze_events` (JSON objects, typed, with
`_rescued_data`) and `bronze_quarantine` (everything else), as in `pipeline.run.runner`.
"""

from __future__ import annotations

from pyspark import pipelines as dp
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.lakeflow.capabilities import Capabilities
from pipeline.lakeflow.quality import expectations
from pipeline.lakeflow.settings import PipelineSettings
from pipeline.table_names import BRONZE_EVENTS, BRONZE_QUARANTINE
from pipeline.transforms import bronze

spark = SparkSession.active()  # the session spark-pipelines or Databricks runs this file in
settings = PipelineSettings.of(spark)
capabilities = Capabilities.of(dp)
rules = settings.expectations().get(BRONZE_EVENTS, ())

BRONZE_PARSED = "bronze_parsed"


@dp.temporary_view(name=BRONZE_PARSED)
def bronze_parsed() -> DataFrame:
    return bronze.parse_lines(bronze.event_lines(spark, settings.events_path()))


@dp.table(name=BRONZE_EVENTS, comment="Every input line that is a JSON object, typed.")
@expectations(dp, capabilities, rules)
def bronze_events() -> DataFrame:
    parsed = spark.readStream.table(BRONZE_PARSED)
    return bronze.bronze_rows(parsed, ingested_at=F.current_timestamp())


@dp.table(name=BRONZE_QUARANTINE, comment="Every non-blank input line that is not an object.")
def bronze_quarantine() -> DataFrame:
    parsed = spark.readStream.table(BRONZE_PARSED)
    return bronze.quarantine_rows(parsed, ingested_at=F.current_timestamp())
