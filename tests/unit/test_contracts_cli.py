"""`python -m contracts` and `clickstream run --expectations` without a JVM: argument errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import __main__ as contracts_cli
from contracts import rules
from pipeline import config
from pipeline.errors import ConfigurationError
from pipeline.transforms import expectations


def test_a_warehouse_without_metrics_is_refused_before_spark_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert contracts_cli.main(["--warehouse", str(tmp_path)]) == 2
    assert "no _event_log" in capsys.readouterr().err


def test_the_default_expectations_module_is_the_contract_rules() -> None:
    loaded = expectations.load_expectations(config.DEFAULT_EXPECTATIONS_MODULE)
    assert loaded is rules.EXPECTATIONS
    assert expectations.load_expectations(config.NO_EXPECTATIONS) == {}


@pytest.mark.parametrize(
    ("module", "message"),
    [("no.such.module", "Cannot import"), ("contracts.checks", "has no EXPECTATIONS")],
)
def test_an_unusable_expectations_module_is_a_clear_error(module: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        expectations.load_expectations(module)
