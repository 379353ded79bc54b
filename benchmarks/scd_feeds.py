"""Random SCD2 change feeds (many keys' histories), applied incrementally on Delta and checked
against the model.

Each history is one key's changes (up to 8, sequenced by `(at, n)` so ties on `at` are broken
by `n`; inserts, updates, deletes, values from tiny domains so that changes equal to the open
version come up often), some delivered twice. All histories are packed into one feed with
distinct keys, shuffled, and cut into batches: so changes arrive out of order, across
batches, and thousands of histories cost a few Spark jobs. The reference model is
`scenarios.scd_model`, which shares no code with the engine.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from benchmarks.workloads import chunks
from pipeline.storage import scd_merge
from pipeline.transforms import scd2
from scenarios.scd_model import scd2 as model_scd2
from tests.change_feeds import DELETES, KEYS, SCHEMA, FeedRow, Layout, model_changes

__all__ = ["LAYOUT", "Verdict", "VersionRow", "apply_incrementally", "check", "random_feed"]

LAYOUT = Layout()
"""SCD type 2 over the value columns `a` and `b`; the operation and sequence left out."""
_SEQUENCES = [(at, n) for at in range(7) for n in range(4)]
_MAX_CHANGES = 8
_REDELIVERED = 20
"""One row in this many is delivered a second time."""

VersionRow = tuple[Any, ...]


@dataclass(frozen=True)
class Verdict:
    """How many histories were checked and how many differ from the model."""

    histories: int
    changes: int
    wrong: int
    examples: tuple[str, ...]


def random_feed(histories: int, *, seed: int) -> list[FeedRow]:
    """Rows of `histories` random histories with distinct keys, in a random arrival order."""
    rng = random.Random(seed)
    rows: list[FeedRow] = []
    for number in range(histories):
        key = ("x" if number % 2 else "y", number)
        for at, n in rng.sample(_SEQUENCES, rng.randint(1, _MAX_CHANGES)):
            operation = rng.choice(("INSERT", "UPDATE", "UPDATE", "DELETE"))
            a = rng.choice((None, 0, 1, 2))
            b = rng.choice((None, "p", "q"))
            rows.append((*key, operation, at, n, a, b))
    for row in rng.sample(rows, len(rows) // _REDELIVERED):
        tenant, id_, operation, at, n, a, b = row
        swapped = {"INSERT": "UPDATE", "UPDATE": "INSERT"}.get(operation, operation)
        rows.append((tenant, id_, swapped, at, n, a, b))  # the same effect
    rng.shuffle(rows)
    return rows


def apply_incrementally(spark: SparkSession, rows: list[FeedRow], batches: int, path: Path) -> None:
    """Merge the feed into the Delta table at `path` in `batches` arrival-order batches."""
    for batch in chunks(rows, batches):
        scd_merge.merge_changes(
            spark,
            spark.createDataFrame(batch, SCHEMA),
            path=str(path),
            keys=list(KEYS),
            sequence_by=F.struct("at", "n"),
            apply_as_deletes=DELETES,
            except_column_list=["op", "at", "n"],
        )


def _sequence(value: Row | None) -> tuple[int, int] | None:
    return None if value is None else (value["at"], value["n"])


def check(spark: SparkSession, rows: list[FeedRow], path: Path) -> Verdict:
    """Compare every key's versions in the table at `path` with the model's."""
    by_key: dict[tuple[Any, ...], list[FeedRow]] = defaultdict(list)
    for row in rows:
        by_key[row[:2]].append(row)
    actual: dict[tuple[Any, ...], list[VersionRow]] = defaultdict(list)
    for row in spark.read.format("delta").load(str(path)).collect():
        actual[(row["tenant"], row["id"])].append(
            (row["a"], row["b"], _sequence(row[scd2.START_AT]), _sequence(row[scd2.END_AT]))
        )
    wrong: list[str] = []
    for key in sorted(set(by_key) | set(actual), key=repr):
        expected = sorted(
            (
                (version.values["a"], version.values["b"], version.start, version.end)
                for version in model_scd2(model_changes(by_key.get(key, []), LAYOUT))
            ),
            key=repr,
        )
        if sorted(actual.get(key, []), key=repr) != expected:
            wrong.append(f"{key}: engine {sorted(actual.get(key, []), key=repr)} model {expected}")
    return Verdict(len(by_key), len(rows), len(wrong), tuple(wrong[:3]))
