# Databricks notebook source
# MAGIC %md
# MAGIC # Orders: cleaned with expectations, revenue as a materialized view
# MAGIC
# MAGIC A shop drops CSV exports of its orders into a volume. Auto Loader ingests them; the
# MAGIC cleaned table keeps only orders that can be billed; a materialized view sums the
# MAGIC revenue per day and country.

# COMMAND ----------

from pyspark import pipelines as dp
from pyspark.sql import functions as F

landing = spark.conf.get("orders.landing")
dbutils.widgets.text("min_amount", "0")
min_amount = float(dbutils.widgets.get("min_amount"))

# COMMAND ----------


@dp.table(comment="Order lines as exported.")
def orders_raw():
    return (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "csv")
        .option("header", "true")
        .option("cloudFiles.inferColumnTypes", "true")
        .option(
            "cloudFiles.schemaHints",
            "order_id BIGINT, ordered_at TIMESTAMP, quantity INT, amount DOUBLE",
        )
        .option("cloudFiles.useNotifications", "true")
        .load(landing)
    )


# COMMAND ----------


@dp.table(comment="Orders that can be billed.")
@dp.expect("has_country", "country IS NOT NULL")
@dp.expect_all_or_drop(
    {
        "has_order_id": "order_id IS NOT NULL",
        "positive_quantity": "quantity > 0",
        "billable_amount": f"amount > {min_amount}",
    }
)
def orders_clean():
    return (
        spark.readStream.table("LIVE.orders_raw")
        .withColumn("order_date", F.to_date("ordered_at"))
        .drop("_rescued_data")
    )


# COMMAND ----------


@dp.materialized_view(comment="Revenue per day and country.")
@dp.expect_or_fail("revenue_is_positive", "revenue > 0")
def daily_revenue():
    return spark.sql(
        """
        SELECT order_date, coalesce(country, 'unknown') AS country,
               count(*) AS orders, round(sum(amount * quantity), 2) AS revenue
        FROM LIVE.orders_clean
        GROUP BY order_date, coalesce(country, 'unknown')
        """
    )
