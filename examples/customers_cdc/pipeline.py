# Databricks notebook source
# MAGIC %md
# MAGIC # Customers: change data capture into an SCD type 2 dimension
# MAGIC
# MAGIC A CRM exports every change of a customer as a JSON line: an upsert carries the whole
# MAGIC row, a delete only the key. Auto Loader ingests the files; a view checks them; AUTO CDC
# MAGIC keeps the history of each customer in `dim_customers`.

# COMMAND ----------

import dlt
from pyspark.sql.functions import col, expr

landing = spark.conf.get("customers.landing")

# COMMAND ----------


@dlt.table(comment="Every change line as landed, typed as strings, with what it did not fit.")
def customers_raw():
    return (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .option("cloudFiles.schemaLocation", "/Volumes/crm/landing/_schemas")
        .option("cloudFiles.schemaHints", "customer_id BIGINT, changed_at TIMESTAMP")
        .load(landing)
    )


# COMMAND ----------


@dlt.view
@dlt.expect("known_operation", "operation IN ('UPSERT', 'DELETE')")
@dlt.expect_or_drop("has_key", "customer_id IS NOT NULL")
@dlt.expect_or_drop("has_sequence", "changed_at IS NOT NULL")
def customer_changes():
    return dlt.read_stream("customers_raw")


# COMMAND ----------

dlt.create_target_table(
    "dim_customers", comment="One version per change of a customer's name, email or tier."
)

dlt.apply_changes(
    target="dim_customers",
    source="customer_changes",
    keys=["customer_id"],
    sequence_by=col("changed_at"),
    apply_as_deletes=expr("operation = 'DELETE'"),
    except_column_list=["operation", "_rescued_data"],
    stored_as_scd_type=2,
)
