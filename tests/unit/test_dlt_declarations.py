"""A user's DLT source executed with the harness's `dlt` module: what it declares is
recorded, with the line of each declaration, and mistakes are named by line. No JVM: the
sources here touch no Spark at their top level, and their queries are not called."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.dlt.api import CdcFlow, DeclaredExpectation, QueryFlow
from pipeline.dlt.loader import UnsupportedFeatureError, load_sources
from pipeline.errors import ConfigurationError

SOURCE = """\
# Databricks notebook source
import dlt
from pyspark import pipelines as dp

# COMMAND ----------

@dlt.view(comment="orders as they land")
@dlt.expect("id_present", "order_id IS NOT NULL")
@dlt.expect_or_drop("amount_positive", "amount > 0")
def orders_clean():
    return dlt.read_stream("orders_raw")


@dp.materialized_view(name="daily_revenue")
@dlt.expect_all_or_fail({"day_known": "day IS NOT NULL"})
def revenue():
    return dlt.read("orders_clean")

# COMMAND ----------

dlt.create_target_table("customers", comment="SCD2 history")
dlt.apply_changes(
    target="customers",
    source="customer_changes",
    keys=["customer_id"],
    sequence_by="ts",
    apply_as_deletes="op = 'DELETE'",
    except_column_list=["op", "ts"],
    stored_as_scd_type="2",
)

dp.create_streaming_table("all_orders", expect_all_or_drop={"has_id": "order_id IS NOT NULL"})

@dlt.append_flow(target="all_orders", name="web_orders")
def web():
    return dlt.read_stream("orders_clean")
"""


def _load(tmp_path: Path, text: str, name: str = "pipeline.py", **settings: str):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_sources([path], None, settings, lambda n: ("read", n), lambda n: ("stream", n))


def test_a_notebook_source_declares_its_datasets_expectations_and_flows(tmp_path: Path) -> None:
    found = _load(tmp_path, SOURCE)
    assert {name: (d.kind, d.line) for name, d in found.datasets.items()} == {
        "orders_clean": ("view", 7),
        "daily_revenue": ("materialized_view", 14),
        "customers": ("streaming_table", 21),
        "all_orders": ("streaming_table", 32),
    }
    assert found.datasets["orders_clean"].expectations == [
        DeclaredExpectation("amount_positive", "amount > 0", "drop"),
        DeclaredExpectation("id_present", "order_id IS NOT NULL", "warn"),
    ]
    assert found.datasets["orders_clean"].options == {"comment": "orders as they land"}
    assert found.datasets["daily_revenue"].expectations == [
        DeclaredExpectation("day_known", "day IS NOT NULL", "fail")
    ]
    assert found.datasets["all_orders"].expectations == [
        DeclaredExpectation("has_id", "order_id IS NOT NULL", "drop")
    ]
    cdc, append = found.flows
    assert isinstance(cdc, CdcFlow) and isinstance(append, QueryFlow)
    assert (cdc.target, cdc.source, cdc.keys, cdc.sequence_by, cdc.line) == (
        "customers", "customer_changes", ("customer_id",), "ts", 22
    )  # fmt: skip
    assert cdc.stored_as_scd_type == 2 and cdc.except_column_list == ("op", "ts")
    assert cdc.apply_as_deletes == "op = 'DELETE'" and cdc.column_list is None
    assert (append.name, append.target, append.line) == ("web_orders", "all_orders", 34)
    # The queries are kept, not called; when called they read through the runtime's functions.
    assert found.datasets["daily_revenue"].query() == ("read", "orders_clean")
    assert append.query() == ("stream", "orders_clean")


def test_the_real_modules_are_back_after_loading(tmp_path: Path) -> None:
    import pyspark

    before = (sys.modules.get("dlt"), pyspark.__dict__.get("pipelines"))
    _load(tmp_path, SOURCE)
    assert (sys.modules.get("dlt"), pyspark.__dict__.get("pipelines")) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "import dlt\n\n@dlt.table\ndef a():\n    pass\n\n"
            "@dlt.table(name='a')\ndef b():\n    pass\n",
            r"pipeline.py:7: the dataset 'a' is declared twice \(first at line 3\)",
        ),
        (
            "import dlt\ndlt.apply_changes(target='t', source='s', keys=['k'], sequence_by='x')\n",
            r"pipeline.py:2: the flow 't' writes 't', which is not declared: declare it first",
        ),
        (
            "import dlt\ndlt.create_streaming_table('t')\ndlt.apply_changes(target='t', "
            "source='s', keys=['k'], sequence_by='x', column_list=['a'], "
            "except_column_list=['b'])\n",
            r"pipeline.py:3: give column_list or except_column_list, not both",
        ),
        (
            "import dlt\ndlt.create_streaming_table('t')\ndlt.apply_changes(target='t', "
            "source='s', keys=['k'], sequence_by='x', track_history_column_list=['a'])\n",
            r"pipeline.py:3: track_history_\* lists apply to SCD type 2 only",
        ),
        (
            "import dlt\n\n@dlt.expect('x', 'a > 0')\ndef orphan():\n    pass\n",
            r"pipeline.py:3: expectations on orphan\(\) but no @dlt.table or @dlt.view on it",
        ),
        (
            "import dlt\n\n@dlt.table\n@dlt.expect('x', None)\ndef t():\n    pass\n",
            r"pipeline.py:3: the expectation 'x' needs a SQL predicate as a string",
        ),
    ],
)
def test_a_mistake_in_the_declarations_is_named_by_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _load(tmp_path, text)


def test_an_unsupported_feature_stops_before_any_source_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    first = tmp_path / "first.py"
    first.write_text(f"open({str(ran)!r}, 'w').close()\n", encoding="utf-8")
    second = tmp_path / "second.py"
    second.write_text('import dlt\nraw = spark.readStream.format("kafka").load()\n', "utf-8")
    with pytest.raises(UnsupportedFeatureError, match=r"second.py:2: a Kafka source") as raised:
        load_sources([first, second], None, {}, str, str)
    assert not ran.exists() and len(raised.value.refusals) == 1


def test_widgets_read_the_settings_and_their_declared_defaults(tmp_path: Path) -> None:
    text = (
        "import dlt\n"
        'dbutils.widgets.text("region", "eu")\n'
        'REGION = dbutils.widgets.get("region")\n'
        'LANDING = dbutils.widgets.get("landing")\n'
        "@dlt.table(name=f'orders_{REGION}', path=LANDING)\n"
        "def t():\n    pass\n"
    )
    found = _load(tmp_path, text, landing="/data/in")
    assert found.datasets["orders_eu"].options == {"path": "/data/in"}
    with pytest.raises(ConfigurationError, match=r"pass --conf landing=VALUE"):
        _load(tmp_path, text)


def test_a_dlt_function_the_harness_lacks_is_refused_by_line(tmp_path: Path) -> None:
    source = tmp_path / "sink.py"
    source.write_text('import dlt\n\ndlt.create_sink("out", "kafka", {})\n')
    with pytest.raises(ConfigurationError, match=r"sink.py:3: dlt.create_sink is not supported"):
        load_sources([source], None, {}, read=lambda _n: None, read_stream=lambda _n: None)
