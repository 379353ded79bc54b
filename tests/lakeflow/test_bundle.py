"""The Databricks Asset Bundle, checked locally with Databricks' own resource models.

`databricks-bundles` (PyPI) is the Python form of the bundle schema: `Pipeline.from_dict`
and `Job.from_dict` refuse any field the schema does not know, so a misspelled field fails
here instead of at `databricks bundle deploy`. What the models cannot know is checked too:
variables are declared, paths exist, the configuration has what the definitions read, and
the grants give analysts gold only. No JVM; runs in `nox -s lakeflow`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.jobs import Job
from databricks.bundles.pipelines import Pipeline

from pipeline import table_names
from pipeline.lakeflow.local import LocalRun, spark_defaults
from pipeline.lakeflow.settings import EXPECTATIONS, LANDING, PII_KEY_REF

PROJECT = Path(__file__).resolve().parents[2]
RESOURCES = PROJECT / "resources"
PIPELINE_FILE = RESOURCES / "clickstream.pipeline.yml"
GOVERNANCE_JOB_FILE = RESOURCES / "governance.job.yml"
VARIABLE = re.compile(r"\$\{var\.([a-z_]+)\}")


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), path
    return loaded


def _pipeline_resource() -> dict[str, Any]:
    resource: dict[str, Any] = _load(PIPELINE_FILE)["resources"]["pipelines"]["clickstream"]
    return resource


def test_the_pipeline_resource_is_valid_for_databricks() -> None:
    pipeline = Pipeline.from_dict(_pipeline_resource())  # type: ignore[arg-type]
    assert pipeline.serverless is True
    assert pipeline.photon is True
    assert pipeline.clusters == []  # serverless: no cluster settings


@pytest.mark.parametrize(("field", "value"), [("serverles", True), ("configurations", {})])
def test_a_misspelled_field_fails(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"Unexpected field '{field}'"):
        Pipeline.from_dict({**_pipeline_resource(), field: value})  # type: ignore[typeddict-item]


def test_the_governance_job_is_valid_and_runs_the_grants() -> None:
    resource = _load(GOVERNANCE_JOB_FILE)["resources"]["jobs"]["clickstream_governance"]
    job = Job.from_dict(resource)
    [task] = resource["tasks"]
    assert (GOVERNANCE_JOB_FILE.parent / task["sql_task"]["file"]["path"]).is_file()
    assert job.name == "clickstream-governance"


def test_every_variable_used_is_declared_with_a_default_and_targets_exist() -> None:
    bundle = _load(PROJECT / "databricks.yml")
    declared = bundle["variables"]
    texts = [(PROJECT / "databricks.yml").read_text(encoding="utf-8")]
    texts += [path.read_text(encoding="utf-8") for path in RESOURCES.glob("*.yml")]
    used = {name for text in texts for name in VARIABLE.findall(text)}
    assert used <= set(declared)
    assert {"catalog", "schema", "landing_path"} <= used
    assert all("default" in spec for spec in declared.values())
    assert set(bundle["targets"]) == {"dev", "prod"}
    assert bundle["include"] == ["resources/*.yml"]


def test_the_bundle_and_the_local_spec_load_the_same_definition_files() -> None:
    [library] = _pipeline_resource()["libraries"]
    bundle_dir = (PIPELINE_FILE.parent / library["glob"]["include"].removesuffix("/**")).resolve()
    spec = _load(PROJECT / "spark-pipeline.yml")
    [local_library] = spec["libraries"]
    local_dir = (PROJECT / local_library["glob"]["include"].removesuffix("/**")).resolve()
    assert bundle_dir == local_dir
    assert sorted(path.name for path in bundle_dir.glob("*.py")) == [
        "bronze_tables.py",
        "gold_tables.py",
        "silver_tables.py",
    ]


def test_the_configuration_refers_to_the_key_and_never_holds_it() -> None:
    configuration = _pipeline_resource()["configuration"]
    assert {LANDING, PII_KEY_REF, EXPECTATIONS} <= set(configuration)
    scheme, _, entry = configuration[PII_KEY_REF].partition(":")
    assert scheme == "conf"
    assert re.fullmatch(r"\{\{secrets/\$\{var\.secret_scope\}/pii_key\}\}", configuration[entry])
    local = _load(PROJECT / "spark-pipeline.yml")["configuration"]
    assert local[PII_KEY_REF].startswith("env:")
    assert set(configuration) - {entry} == set(local) - {
        key for key in local if key.startswith("spark.")
    }


def _grants(principal: str) -> set[str]:
    text = (RESOURCES / "governance.sql").read_text(encoding="utf-8")
    pattern = rf"'GRANT SELECT ON TABLE (\w+) TO `' \|\| :{principal} \|\|"
    return set(re.findall(pattern, text))


def test_analysts_read_gold_only_and_engineers_read_every_layer() -> None:
    published = set(table_names.TABLES)
    assert _grants("analysts") == set(table_names.GOLD_TABLES)
    assert _grants("engineers") == published | {"gold_user_versions"}


def test_a_local_run_gets_absolute_storage_and_its_own_landing(tmp_path: Path) -> None:
    run = LocalRun(
        spec=PROJECT / "spark-pipeline.yml",
        warehouse=tmp_path / "warehouse",
        landing=tmp_path / "landing",
        configuration={EXPECTATIONS: "none"},
    )
    spec = run.effective_spec()
    assert spec["storage"] == (tmp_path / "warehouse" / "_pipeline_storage").as_uri()
    assert spec["configuration"][LANDING] == str(tmp_path / "landing")
    assert spec["configuration"][EXPECTATIONS] == "none"
    assert spec["libraries"] == _load(PROJECT / "spark-pipeline.yml")["libraries"]
    assert spark_defaults({"b": "2", "a": "1"}) == "a 1\nb 2\n"
