"""Hostile bytes through the bronze stage: every non-blank line lands in exactly one table.

Arbitrary byte lines (any encoding, control characters, invalid UTF-8, huge lines, deep
nesting, near-valid events) are written to a landing file and read by the real streaming
bronze stage into Delta. Nothing may raise, and `bronze_events` + `bronze_quarantine` hold
exactly the file's records, counted as Spark's text source splits lines.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline import table_names
from pipeline.run.bronze_stage import check_bronze, write_bronze
from pipeline.storage import tables
from scenarios.faults.model import count_records
from tests.budget import examples

ENCODINGS = ("utf-8", "utf-16", "utf-32", "latin-1", "cp1252", "shift_jis")


def _one_line(raw: bytes) -> bytes:
    """The bytes as one line: line breaks (the text source's separators) become spaces."""
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


@st.composite
def _encoded_text(draw: st.DrawFn) -> bytes:
    text = draw(st.text(st.characters(codec="utf-8"), max_size=60))
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


@st.composite
def _nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 5000))
    opening, closing = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    inner = opening * depth + b"1" + closing * depth
    return b'{"event_id": "n", "user": ' + inner + b"}" if draw(st.booleans()) else inner


@st.composite
def _huge(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(10_000, 300_000))
    return orjson.dumps({"event_id": "h", "page": {"url": "x" * size}})


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def _near_event(draw: st.DrawFn) -> bytes:
    fields = draw(
        st.dictionaries(
            st.sampled_from(["event_id", "event_type", "event_ts", "user", "page", "Event_ID"]),
            _json_values,
            max_size=5,
        )
    )
    # Python's json writes what orjson refuses: integers past 64 bits, NaN and Infinity.
    return json.dumps(fields, ensure_ascii=draw(st.booleans())).encode()


LINES = st.lists(
    st.one_of(
        st.binary(max_size=120),
        _encoded_text(),
        _nested(),
        _huge(),
        _near_event(),
        st.sampled_from([b"", b"   ", b"\t", b"\xef\xbb\xbf", b"\x00", b"{}", b"null", b"\x1b[0m"]),
    ).map(_one_line),
    min_size=1,
    max_size=12,
)


@pytest.mark.property
@settings(
    max_examples=examples(dev=3, ci=60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=LINES, line_break=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_hostile_lines_each_land_in_exactly_one_bronze_table(
    spark: SparkSession, lines: list[bytes], line_break: bytes
) -> None:
    content = line_break.join(lines) + line_break
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        landing, warehouse = root / "landing", root / "warehouse"
        (landing / table_names.EVENTS_DIR).mkdir(parents=True)
        (landing / table_names.EVENTS_DIR / "hostile.json").write_bytes(content)
        text = spark.read.text(str(landing / table_names.EVENTS_DIR)).select(
            "value", F.col("_metadata.file_path").alias("_source_file")
        )
        write_bronze(
            spark,
            warehouse,
            check_bronze(text, ingested_at=datetime.now(UTC)),
            batch_id=0,
        )
        events = tables.count_rows(spark, warehouse, table_names.BRONZE_EVENTS)
        quarantined = tables.count_rows(spark, warehouse, table_names.BRONZE_QUARANTINE)
        assert events + quarantined == count_records(content)
    finally:
        shutil.rmtree(root, ignore_errors=True)
