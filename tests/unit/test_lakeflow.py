"""The Lakeflow adapters without a JVM: the graph they register, capabilities, settings.

Like Spark's own SDP tests, the definition files are loaded under a registry that records
what they define instead of sending it to a Spark Connect server; query functions are not
called. A stand-in for Databricks' `dp` (open source's, plus the expectation decorators, SCD2
AUTO CDC and `cluster_by_auto`) shows which native features the adapters pick up.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pyspark
import pytest
from pyspark import pipelines as oss_dp
from pyspark.pipelines.flow import AutoCdcFlow, Flow
from pyspark.pipelines.graph_element_registry import (
    GraphElementRegistry,
    graph_element_registration_context,
)
from pyspark.pipelines.output import MaterializedView, Output, StreamingTable, TemporaryView
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline import config, table_names
from pipeline.config import DEFAULT_EXPECTATIONS_MODULE
from pipeline.errors import ConfigurationError, MissingPiiKeyError
from pipeline.lakeflow import quality, run_events, sources
from pipeline.lakeflow.capabilities import Capabilities
from pipeline.lakeflow.settings import (
    EXPECTATIONS,
    LANDING,
    PII_KEY_REF,
    WATERMARK_DELAY,
    PipelineSettings,
)
from pipeline.observe import flows
from pipeline.transforms import gold
from pipeline.transforms.expectations import Expectation

PROJECT = Path(__file__).resolve().parents[2]
DEFINITIONS = PROJECT / "pipeline" / "lakeflow" / "transformations"
KEY_ENV = "CLICKSTREAM_TEST_LAKEFLOW_KEY"


# ----------------------------------------------------------------------------- test doubles


@dataclass
class RecordingRegistry(GraphElementRegistry):
    """Keeps what the definitions register."""

    outputs: dict[str, Output] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    auto_cdc_flows: list[AutoCdcFlow] = field(default_factory=list)

    def register_output(self, output: Output) -> None:
        assert output.name not in self.outputs, f"{output.name} defined twice"
        self.outputs[output.name] = output

    def register_flow(self, flow: Flow) -> None:
        assert flow.name not in self.flows, f"flow {flow.name} defined twice"
        self.flows[flow.name] = flow

    def register_auto_cdc_flow(self, flow: AutoCdcFlow) -> None:
        self.auto_cdc_flows.append(flow)

    def register_sql(self, sql_text: str, file_path: Path) -> None:
        raise AssertionError("the pipeline has no SQL definitions")


class _Conf:
    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._values.get(key, default)


class FakeSpark:
    """What the definition files use of a session when they load: configuration, a frame."""

    def __init__(self, configuration: dict[str, str]) -> None:
        self.conf = _Conf(configuration)

    def createDataFrame(self, *args: object, **kwargs: object) -> object:  # noqa: N802
        return object()


@dataclass
class DatabricksDp:
    """A stand-in for Databricks' `dp`: open source's functions plus what Databricks adds."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def module(self) -> ModuleType:
        fake = ModuleType("pyspark.pipelines")
        for name in ("temporary_view", "create_streaming_table", "append_flow"):
            setattr(fake, name, getattr(oss_dp, name))

        def table(query_function: Any = None, *, cluster_by_auto: bool = False, **kw: Any) -> Any:
            self.calls.append(("table", {"cluster_by_auto": cluster_by_auto, **kw}))
            return oss_dp.table(query_function, **kw)

        def materialized_view(
            query_function: Any = None, *, cluster_by_auto: bool = False, **kw: Any
        ) -> Any:
            self.calls.append(("materialized_view", {"cluster_by_auto": cluster_by_auto, **kw}))
            return oss_dp.materialized_view(query_function, **kw)

        def create_auto_cdc_flow(
            target: str,
            source: str,
            keys: list[str],
            sequence_by: Any,
            apply_as_deletes: Any = None,
            column_list: Any = None,
            except_column_list: Any = None,
            stored_as_scd_type: Any = None,
            track_history_column_list: Any = None,
            track_history_except_column_list: Any = None,
            name: str | None = None,
        ) -> None:
            self.calls.append(
                (
                    "create_auto_cdc_flow",
                    {
                        "target": target,
                        "source": source,
                        "keys": keys,
                        "except_column_list": except_column_list,
                        "stored_as_scd_type": stored_as_scd_type,
                    },
                )
            )

        def expectation(name: str) -> Callable[[dict[str, str]], Callable[[Any], Any]]:
            def decorator(rules: dict[str, str]) -> Callable[[Any], Any]:
                self.calls.append((name, dict(rules)))
                return lambda function: function

            return decorator

        fake.table = table  # type: ignore[attr-defined]
        fake.materialized_view = materialized_view  # type: ignore[attr-defined]
        fake.create_auto_cdc_flow = create_auto_cdc_flow  # type: ignore[attr-defined]
        for name in ("expect", "expect_or_drop", "expect_or_fail"):
            setattr(fake, name, expectation(name))
        for name in ("expect_all", "expect_all_or_drop", "expect_all_or_fail"):
            setattr(fake, name, expectation(name))
        return fake


CONFIGURATION = {
    LANDING: "/landing",
    PII_KEY_REF: f"env:{KEY_ENV}",
    WATERMARK_DELAY: "30 minutes",
    EXPECTATIONS: DEFAULT_EXPECTATIONS_MODULE,
}


@pytest.fixture
def loaded_without_jvm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The definition files can load: a fake session, a key, no Spark jobs at load time."""
    fake = FakeSpark(CONFIGURATION)
    monkeypatch.setattr(SparkSession, "active", staticmethod(lambda: fake))
    monkeypatch.setenv(KEY_ENV, "a-key-for-registration-tests-0123456789")
    # Columns built as the files load are Spark Connect columns, as under spark-pipelines:
    # plain Python objects, no JVM.
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "1")
    # The open-source fallback builds the user dimension as the file loads (Spark jobs).
    monkeypatch.setattr(gold, "dim_user", lambda *_args, **_kwargs: object())
    monkeypatch.setattr(gold, "user_changes", lambda *_args, **_kwargs: object())
    monkeypatch.setattr(sources, "user_change_files", lambda *_args, **_kwargs: object())
    yield


def _register(dp_module: ModuleType | None = None) -> RecordingRegistry:
    registry = RecordingRegistry()
    with pytest.MonkeyPatch.context() as patch:
        if dp_module is not None:
            patch.setattr(pyspark, "pipelines", dp_module)
            patch.setitem(sys.modules, "pyspark.pipelines", dp_module)
        with graph_element_registration_context(registry):
            for path in sorted(DEFINITIONS.glob("*.py")):
                spec = importlib.util.spec_from_file_location(path.stem, path)
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return registry


# ----------------------------------------------------------------------- the registered graph


@pytest.mark.usefixtures("loaded_without_jvm")
def test_open_source_graph_has_every_runner_table_with_the_right_kind() -> None:
    registry = _register()
    kinds = {name: type(output) for name, output in registry.outputs.items()}
    assert kinds == {
        "bronze_parsed": TemporaryView,
        table_names.BRONZE_EVENTS: StreamingTable,
        table_names.BRONZE_QUARANTINE: StreamingTable,
        table_names.SILVER_EVENTS: StreamingTable,
        table_names.SILVER_QUARANTINE: StreamingTable,
        table_names.SILVER_LATE_EVENTS: MaterializedView,
        **dict.fromkeys(table_names.GOLD_TABLES, MaterializedView),
    }
    targets = {flow.name: flow.target for flow in registry.flows.values()}
    assert targets["silver_unplaceable"] == table_names.SILVER_QUARANTINE
    assert targets["silver_dropped_by_rules"] == table_names.SILVER_QUARANTINE
    assert set(targets.values()) == set(kinds)
    assert registry.auto_cdc_flows == []  # SCD2 is ours: open source AUTO CDC is SCD1 only
    assert all(
        not output.cluster_by
        for output in registry.outputs.values()
        if isinstance(output, MaterializedView | StreamingTable)
    )


@pytest.mark.usefixtures("loaded_without_jvm")
def test_databricks_graph_uses_auto_cdc_native_expectations_and_auto_clustering() -> None:
    databricks = DatabricksDp()
    registry = _register(databricks.module())

    auto_cdc = [kwargs for name, kwargs in databricks.calls if name == "create_auto_cdc_flow"]
    assert auto_cdc == [
        {
            "target": "gold_user_versions",
            "source": "user_changes",
            "keys": [gold.USER_KEY],
            "except_column_list": ["operation", "changed_at", "sequence_num"],
            "stored_as_scd_type": 2,
        }
    ]
    assert isinstance(registry.outputs["gold_user_versions"], StreamingTable)
    assert isinstance(registry.outputs[table_names.GOLD_DIM_USER], MaterializedView)

    native = [(name, rules) for name, rules in databricks.calls if name.startswith("expect")]
    assert native  # contracts.rules has SQL rules: Databricks evaluates and counts them
    for _name, rules in native:
        assert all(predicate.startswith("coalesce((") for predicate in rules.values())

    views = [kwargs for name, kwargs in databricks.calls if name == "materialized_view"]
    clustered = [view["name"] for view in views if view["cluster_by_auto"]]
    assert set(clustered) == set(table_names.GOLD_TABLES) - {table_names.GOLD_DIM_USER}


# --------------------------------------------------------------------------- capabilities


def test_open_source_dp_offers_none_of_the_databricks_features() -> None:
    capabilities = Capabilities.of(oss_dp)
    assert capabilities == Capabilities(
        expectations=False, scd2_auto_cdc=False, cluster_by_auto=False, deduplicates_datasets=False
    )
    assert capabilities.clustering("event_date") == {}
    assert "expectations: emulated" in capabilities.describe()


def test_databricks_dp_offers_all_of_them() -> None:
    capabilities = Capabilities.of(DatabricksDp().module())
    assert capabilities == Capabilities(
        expectations=True, scd2_auto_cdc=True, cluster_by_auto=True, deduplicates_datasets=True
    )
    assert capabilities.clustering("event_date") == {
        "cluster_by_auto": True,
        "cluster_by": ["event_date"],
    }


def test_sql_rules_go_native_only_where_dp_has_expectations() -> None:
    examples: dict[str, Any] = {"passing_example": {"price": 1}, "failing_example": {"price": -1}}
    sql = Expectation(
        name="sql", predicate="price >= 0", action="drop", description="Priced.", **examples
    )
    built = Expectation(
        name="built",
        predicate=lambda: F.col("price") >= 0,
        action="warn",
        description="Priced.",
        **examples,
    )
    oss = Capabilities(False, False, False, False)
    databricks = Capabilities(True, True, True, True)
    assert quality.split_rules([sql, built], oss) == ((), (sql, built))
    assert quality.split_rules([sql, built], databricks) == ((sql,), (built,))
    assert quality.native_predicate(sql) == "coalesce((price >= 0), false)"


# ------------------------------------------------------------------------------ settings


def test_settings_need_the_landing_and_the_key_reference() -> None:
    with pytest.raises(ConfigurationError, match=LANDING):
        PipelineSettings.read({PII_KEY_REF: "env:X"}.get)
    settings = PipelineSettings.read({LANDING: "s3://bucket/landing/", PII_KEY_REF: "env:X"}.get)
    assert settings.events_path() == "s3://bucket/landing/events"
    assert settings.expectations() == {}


def test_a_relative_landing_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = PipelineSettings.read({LANDING: "landing", PII_KEY_REF: "env:X"}.get)
    assert settings.landing == str(tmp_path / "landing")


def test_key_reference_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "environment-key-0123456789")
    (tmp_path / "key").write_text("file-key-0123456789abcdef\n", encoding="utf-8")
    entries = {"secret": "conf-key-0123456789abcdef", "unresolved": "{{secrets/scope/key}}"}

    def resolve(reference: str) -> bytes:
        return config.pii_key_from_reference(reference, entries.get).reveal()

    assert resolve(f"env:{KEY_ENV}") == b"environment-key-0123456789"
    assert resolve(f"file:{tmp_path / 'key'}") == b"file-key-0123456789abcdef"
    assert resolve("conf:secret") == b"conf-key-0123456789abcdef"
    with pytest.raises(ConfigurationError, match="only Databricks resolves"):
        resolve("conf:unresolved")
    with pytest.raises(ConfigurationError, match="not one of"):
        resolve("a-key-pasted-into-the-configuration")
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(MissingPiiKeyError, match=KEY_ENV):
        resolve(f"env:{KEY_ENV}")


@pytest.mark.parametrize(
    ("line", "flow", "status"),
    [
        (
            "2026-12-01 00:02:00: Flow spark_catalog.default.gold_dim_page is QUEUED.",
            "gold_dim_page",
            "QUEUED",
        ),
        (
            "2026-12-01 00:02:13: Flow spark_catalog.default.gold_dim_user has COMPLETED.",
            "gold_dim_user",
            "COMPLETED",
        ),
        ("Flow `spark_catalog`.`default`.`silver_events` has FAILED.", "silver_events", "FAILED"),
        ("2026-12-01 00:02:37: Run is COMPLETED.", None, "COMPLETED"),
        ("2026-12-01 00:02:37: Run has FAILED.", None, "FAILED"),
    ],
)
def test_sdp_output_lines_give_flow_statuses_and_the_run_state(
    line: str, flow: str | None, status: str
) -> None:
    assert run_events.parse_line(line) == run_events.Line(flow, status)


def test_other_sdp_output_lines_say_nothing() -> None:
    for line in ("2026-12-01 00:01:13: Registering graph elements...", "WARN Utils: hostname", ""):
        assert run_events.parse_line(line) is None


def test_the_sdp_graph_writes_every_runner_table_and_reads_what_the_runner_reads() -> None:
    assert {f.output for f in run_events.SDP_FLOWS} == {f.output for f in flows.FLOWS}
    sdp = {f.name: f for f in run_events.SDP_FLOWS}
    for flow in flows.FLOWS:
        if flow.name in sdp:
            assert set(flow.inputs) <= set(sdp[flow.name].inputs)


def test_spark_pipelines_runs_on_a_connect_server_or_a_local_server_of_its_own() -> None:
    from pipeline.lakeflow.local import server_url

    jars = Path("unused")
    assert server_url(config.SparkSettings(remote=None, jar_cache=jars)) == "local[2]"
    remote = config.SparkSettings(remote="sc://127.0.0.1:15002", jar_cache=jars)
    assert server_url(remote) == "sc://127.0.0.1:15002"
    cluster = config.SparkSettings(remote=None, jar_cache=jars, master="spark://127.0.0.1:7077")
    with pytest.raises(ConfigurationError, match="Start a Spark Connect server on the cluster"):
        server_url(cluster)
