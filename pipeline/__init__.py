"""Clickstream medallion pipeline: pure layer functions over Spark DataFrames, plus a thin runtime."""
