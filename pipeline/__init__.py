"""Clickstream medallion pipeline on Spark and Delta Lake, by concern: `transforms` (the pure
layer functions over DataFrames), `run` (the run sequence and everything that executes it),
`storage` (Delta tables and logs), `observe` (the event log), `privacy`, `landing`, and
`lakeflow` (the Spark Declarative Pipelines adapters over the same transforms)."""
