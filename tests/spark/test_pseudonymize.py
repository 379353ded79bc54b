"""Keyed pseudonymization: real HMAC-SHA256, and the key never shows in query plans."""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Sequence
from contextlib import redirect_stdout

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import PiiKey
from pipeline.transforms.pseudonymize import hmac_sha256, keyed_hash, with_key


def _hashed(spark: SparkSession, keys: DataFrame, values: Sequence[str | None]) -> DataFrame:
    frame = spark.createDataFrame([(value,) for value in values], "value string")
    return with_key(frame, keys).select("value", hmac_sha256(F.col("value")).alias("hashed"))


def test_matches_python_hmac_sha256(spark: SparkSession, keys: DataFrame, pii_key: PiiKey) -> None:
    values = ["alice@example.com", "", "Zoë Ünïcode", "203.0.113.9"]
    rows = _hashed(spark, keys, values).collect()
    expected = {
        v: hmac.new(pii_key.reveal(), v.encode(), hashlib.sha256).hexdigest() for v in values
    }
    assert {row.value: row.hashed for row in rows} == expected
    # the plain-Python twin that erasure and rotation search with
    assert {v: keyed_hash(pii_key, v) for v in values} == expected


def test_null_stays_null(spark: SparkSession, keys: DataFrame) -> None:
    [row] = _hashed(spark, keys, [None]).collect()
    assert row.hashed is None


def test_key_is_not_in_any_explain_output(
    spark: SparkSession, keys: DataFrame, pii_key: PiiKey
) -> None:
    frame = _hashed(spark, keys, ["alice@example.com"])
    printed = io.StringIO()
    with redirect_stdout(printed):
        for mode in ("simple", "extended", "codegen", "cost", "formatted"):
            frame.explain(mode)
    text = printed.getvalue().lower()
    padded = pii_key.reveal().ljust(64, b"\0")
    for secret in (
        pii_key.reveal(),
        bytes(b ^ 0x36 for b in padded),
        bytes(b ^ 0x5C for b in padded),
    ):
        assert secret.hex() not in text
    assert pii_key.reveal().decode().lower() not in text
    assert "sha2" in text  # the plan was printed at all
