"""Clickstream medallion pipeline: pure layer functions over Spark DataFrames, a thin runtime."""
