"""Keyed pseudonymization (HMAC-SHA256) computed by Spark itself, with the key kept out of plans.

Spark 4.2 has no HMAC function, so HMAC is composed from `sha2` over binary, as RFC 2104
defines it: H((K xor opad) || H((K xor ipad) || m)). The padded key enters the query as a
one-row DataFrame joined to the data, never as a literal: a literal would be printed by
`explain()` and stored in query plans, while a local relation's rows are not.
"""

from __future__ import annotations

import hashlib
import hmac

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.config import PiiKey

__all__ = [
    "IPAD_COLUMN",
    "OPAD_COLUMN",
    "hmac_sha256",
    "key_frame",
    "keyed_hash",
    "with_key",
]

_BLOCK_SIZE = 64  # SHA-256 block size in bytes (RFC 2104 "B")
IPAD_COLUMN = "_pii_ipad"
OPAD_COLUMN = "_pii_opad"


def key_frame(spark: SparkSession, key: PiiKey) -> DataFrame:
    """A one-row DataFrame holding the HMAC inner and outer padded keys."""
    secret = key.reveal()
    if len(secret) > _BLOCK_SIZE:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK_SIZE, b"\0")
    inner = bytearray(byte ^ 0x36 for byte in secret)
    outer = bytearray(byte ^ 0x5C for byte in secret)
    return spark.createDataFrame([(inner, outer)], f"{IPAD_COLUMN} binary, {OPAD_COLUMN} binary")


def hmac_sha256(value: Column) -> Column:
    """Hex HMAC-SHA256 of a string column with the key columns of `with_key`; null stays null."""
    message = F.encode(value, "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.col(IPAD_COLUMN), message), 256))
    return F.sha2(F.concat(F.col(OPAD_COLUMN), inner), 256)


def with_key(events: DataFrame, keys: DataFrame) -> DataFrame:
    """Attach the padded key columns (from `key_frame`) to every row, by a broadcast join."""
    return events.crossJoin(F.broadcast(keys))


def keyed_hash(key: PiiKey, value: str) -> str:
    """The hex HMAC-SHA256 of `value` in plain Python: what `hmac_sha256` gives in Spark."""
    return hmac.new(key.reveal(), value.encode("utf-8"), hashlib.sha256).hexdigest()
