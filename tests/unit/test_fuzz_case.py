"""A fuzz case prints as the command that reproduces it exactly, and a bad one is refused."""

from __future__ import annotations

import argparse
import shlex

import pytest
from hypothesis import given

from scenarios import __main__ as scenarios_cli
from scenarios.fuzz import FuzzCase, fuzz_cases


@pytest.mark.property
@given(case=fuzz_cases(base_seed=7))
def test_a_case_reads_back_from_its_command_exactly(case: FuzzCase) -> None:
    argument = shlex.split(case.command())[-1]
    assert scenarios_cli._fuzz_case(argument) == case


@pytest.mark.parametrize(
    "text", ["1,200,2", '{"seed": 1, "events": 200}', '{"seed":1,"events":2,"faults":[3]}']
)
def test_a_malformed_case_names_the_expected_form(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="failing --fuzz run prints"):
        scenarios_cli._fuzz_case(text)
