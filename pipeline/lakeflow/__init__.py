"""Lakeflow / Spark Declarative Pipelines adapters: the pure layer functions as a pipeline graph.

`transformations/` holds the definition files that `spark-pipelines` (open source, over Spark
Connect) and Databricks load: each dataset is a zero-argument query function that reads its
inputs and calls a function of `pipeline`. The rest is glue with no transformation logic:

* `settings`: the pipeline configuration entries the definitions read (landing path, PII key
  reference, watermark, expectations module).
* `capabilities`: what the running `pyspark.pipelines` offers beyond open source (expectation
  decorators, SCD2 AUTO CDC, automatic liquid clustering), decided by inspecting it.
* `quality`: expectations as native decorators where they exist, our engine otherwise.
* `local`: runs `spark-pipelines` on this machine with the Delta jars and settings it needs.
"""
