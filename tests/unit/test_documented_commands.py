"""Every command the README and docs/ show is one the tools accept, without a JVM.

Each command line of a code block is parsed by the real argument parser of the program it
names (`clickstream`, `python -m ...`, or the module a `nox -s` session runs, with what follows
`--`); each command quoted inline must name a real subcommand, options and nox session. What
the commands then do is run by the test suites and by `.ci/run`; this keeps the documentation
from drifting away from the flags.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks import __main__ as benchmarks_cli
from benchmarks import decay, history_scale
from clickstream import cli
from contracts import __main__ as contracts_cli
from pipeline.lakeflow import local as lakeflow_cli
from scenarios import __main__ as scenarios_cli
from scenarios import chaos, cluster

PROJECT = Path(__file__).resolve().parents[2]
DOCUMENTS = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
PROGRAMS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "clickstream": cli._parser,
    "python -m scenarios": scenarios_cli._parser,
    "python -m scenarios.chaos": chaos._parser,
    "python -m scenarios.cluster": cluster._parser,
    "python -m contracts": contracts_cli._parser,
    "python -m benchmarks": benchmarks_cli._parser,
    "python -m benchmarks.decay": decay._parser,
    "python -m benchmarks.history_scale": history_scale._parser,
    "python -m pipeline.lakeflow": lakeflow_cli._parser,
}
SESSION_PROGRAMS = {
    "scenarios": "python -m scenarios",
    "chaos": "python -m scenarios.chaos",
    "cluster": "python -m scenarios.cluster",
    "benchmarks": "python -m benchmarks",
}
"""The nox sessions whose arguments after `--` go to one of our programs (the others: pytest)."""


def _sessions() -> set[str]:
    tree = ast.parse((PROJECT / "noxfile.py").read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("session" in ast.unparse(decorator) for decorator in node.decorator_list)
    }


def _block_commands(text: str) -> Iterator[str]:
    """The command lines of the fenced code blocks, continuation lines joined."""
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                yield part.split("  #")[0].strip()


def _inline_commands(text: str) -> Iterator[str]:
    outside_blocks = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    yield from (span.strip() for span in re.findall(r"`([^`\n]+)`", outside_blocks))


def _program(command: str) -> tuple[str, list[str]] | None:
    """The program a command runs and its arguments; None for anything else."""
    known = [*PROGRAMS, "nox -s"]
    if "..." in command or not any(command.split()[: len(k.split())] == k.split() for k in known):
        return None
    words = shlex.split(command.replace("[", "").replace("]", ""))
    if words[:2] == ["nox", "-s"] and len(words) > 2:
        return f"nox -s {words[2]}", words[3:]
    for name in sorted(PROGRAMS, key=len, reverse=True):
        if words[: len(name.split())] == name.split():
            return name, words[len(name.split()) :]
    return None


def _documented(kind: Callable[[str], Iterator[str]]) -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for command in kind(document.read_text(encoding="utf-8")):
            if _program(command) is not None:
                found.append((document.name, command))
    return found


BLOCKS = _documented(_block_commands)
INLINE = _documented(_inline_commands)


def _resolve(program: str, arguments: list[str]) -> tuple[str, list[str]]:
    """A nox session's program and the arguments it passes on; checks the session exists."""
    if not program.startswith("nox -s "):
        return program, arguments
    session = program.removeprefix("nox -s ")
    assert session in _sessions(), f"no nox session {session!r} in noxfile.py"
    after = arguments[arguments.index("--") + 1 :] if "--" in arguments else []
    return SESSION_PROGRAMS.get(session, ""), after


def test_the_documents_show_commands_of_every_program() -> None:
    shown = {_resolve(*(_program(c) or ("", [])))[0] for _, c in BLOCKS + INLINE}
    assert set(PROGRAMS) <= shown | {""}, set(PROGRAMS) - shown
    assert {"nox -s scenarios", "nox -s tests"} <= {(_program(c) or ("",))[0] for _, c in BLOCKS}


@pytest.mark.parametrize(("document", "command"), BLOCKS, ids=[c for _, c in BLOCKS])
def test_a_documented_command_line_parses(
    document: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    program, arguments = _resolve(*(_program(command) or ("", [])))
    if not program:
        return  # a pytest session's arguments are pytest's
    try:
        PROGRAMS[program]().parse_args(arguments)
    except SystemExit as exit_:
        assert exit_.code == 0, f"{document}: {command!r}: {capsys.readouterr().err}"


def _options(parser: argparse.ArgumentParser, words: list[str]) -> tuple[str, set[str]]:
    """The (sub)command the words name and the options it takes."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and words and words[0] in action.choices:
            return _options(action.choices[words[0]], words[1:])
    return parser.prog, set(parser._option_string_actions)


@pytest.mark.parametrize(("document", "command"), INLINE, ids=[c for _, c in INLINE])
def test_a_command_quoted_inline_names_real_options(document: str, command: str) -> None:
    program, arguments = _resolve(*(_program(command) or ("", [])))
    if not program:
        return
    name, options = _options(
        PROGRAMS[program](), [w for w in arguments if not w.startswith("-")][:1]
    )
    unknown = [
        w.split("=")[0] for w in arguments if w.startswith("--") and w.split("=")[0] not in options
    ]
    assert not unknown, f"{document}: {command!r}: {name} has no {unknown}"
