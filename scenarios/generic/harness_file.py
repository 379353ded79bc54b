"""The harness file (`harness.yml`): what the generic harness must know of a user's pipeline
to feed it and judge it.

```yaml
landing: customers.landing          # the --conf key the sources read their landing folder from
settings: {min_amount: "1"}         # other --conf values (optional)
inputs:
  changes:                          # one input: files under <landing>/<folder>
    folder: ""                      # "" (default): the landing folder itself
    format: json                    # json (default) or csv
    changes: true                   # true (default): a key recurs; false: each record is new
    refuses: []                     # fault families the pipeline stops on by design
    fields:
      customer_id: {type: long, role: key}
      changed_at: {type: timestamp, role: sequence}
      operation: {type: string, values: [UPSERT], delete: DELETE}
      email: {type: email, personal: true}
      note: {type: text}
datasets:
  customers_raw: {role: raw, input: changes}
  customer_changes: {role: cleaned, input: changes}
  dim_customers: {role: cdc_target, input: changes}
  # a cleaned dataset of an input with several raw datasets says which one it judges:
  # silver: {role: cleaned, input: events, judges: bronze_events}
pseudonymized: []                   # datasets (of any role or none) that must hold no
                                    # clear personal value
run_time_columns: []                # columns holding when an update ran (current_timestamp()),
                                    # left out of the incremental = full refresh comparison
full_refresh_differs_in: {}         # scenario: why a full refresh may differ there (a
                                    # watermark and late data); shown in the report
```

Field types: `long`, `int`, `double`, `boolean`, `string` (with `values`, one of them),
`timestamp`, `date`, `email`, `name`, `text` (free text, where personal data can hide),
`uuid`. Roles: `key` (one or more fields), `sequence` (orders the changes of a key: a
timestamp, date, long or int; several fields, in the file's order, when the pipeline's
`sequence_by` is a struct of them). A field with `delete: VALUE` marks deletes: a delete record
holds the key, the sequence fields and that value. In a JSON input a dotted name
(`user.email`) is a field of a nested object.

An input's records are changes by default: keys come from a pool, so a key changes several
times (customers, accounts). `changes: false` gives each record a key of its own (events,
orders). `refuses: [corrupt]` says the pipeline stops on that fault in this input by design
(an update fails, naming the problem): the scenario then checks that it does, repairs the
input (its clean lines in place of the faulty ones) and expects the next update to complete
and every invariant to hold. Several datasets may be the `raw` of one input (a table and its
quarantine): every line must be a row of one of them.

Every mistake is named with its path in the file (`inputs.changes.fields.email.type`) and
what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigurationError

__all__ = [
    "FIELD_TYPES",
    "FORMATS",
    "ROLES",
    "Dataset",
    "Field",
    "Harness",
    "Input",
    "harness_from",
    "read_harness",
]

FIELD_TYPES = (
    "long",
    "int",
    "double",
    "boolean",
    "string",
    "timestamp",
    "date",
    "email",
    "name",
    "text",
    "uuid",
)
FORMATS = ("json", "csv")
FAULT_NAMES = (
    "duplicates",
    "out_of_order",
    "late",
    "deletes",
    "corrupt",
    "new_field",
    "changed_type",
    "missing_field",
    "pii_in_text",
    "burst",
)
"""The fault families (`scenarios.generic.records.FAULTS`)."""
SEQUENCE_TYPES = ("timestamp", "date", "long", "int")
ROLES = ("raw", "cleaned", "cdc_target")
"""What a dataset is to the invariants: `raw` holds every line of its input (or its rescued
data), `cleaned` is judged by expectations, `cdc_target` must equal the AUTO CDC reference."""


@dataclass(frozen=True)
class Field:
    """One field of an input's records."""

    name: str
    type: str
    role: str | None = None
    values: tuple[str, ...] = ()
    delete: str | None = None
    personal: bool = False


@dataclass(frozen=True)
class Input:
    """One input: the records landed under `<landing>/<folder>`."""

    name: str
    folder: str
    format: str
    fields: tuple[Field, ...]
    changes: bool = True
    """Whether a key recurs (changes of an entity); False: each record has a key of its own."""
    refuses: tuple[str, ...] = ()
    """Fault families the pipeline refuses in this input by design (an update fails, naming
    the problem, until the input is repaired)."""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.role == "key")

    @property
    def sequence(self) -> str | None:
        """The first sequence field (compared first)."""
        return next(iter(self.sequences), None)

    @property
    def sequences(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.role == "sequence")

    @property
    def delete_field(self) -> Field | None:
        return next((f for f in self.fields if f.delete is not None), None)

    @property
    def personal(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.personal or f.type in ("email", "name"))


@dataclass(frozen=True)
class Dataset:
    """A dataset of the pipeline the invariants judge."""

    name: str
    role: str
    input: str
    judges: str | None = None
    """For a `cleaned` dataset: the raw dataset whose every row its expectations judge."""


@dataclass(frozen=True)
class Harness:
    """A harness file, read and checked."""

    landing: str
    inputs: dict[str, Input]
    datasets: dict[str, Dataset]
    settings: dict[str, str] = field(default_factory=dict)
    pseudonymized: tuple[str, ...] = ()
    run_time_columns: tuple[str, ...] = ()
    """Columns that hold when an update ran (an ingestion time): not compared between the
    incremental result and a full refresh."""
    full_refresh_differs_in: dict[str, str] = field(default_factory=dict)
    """Scenarios where a full refresh may differ from the incremental result, and why (a
    stateful streaming table with a watermark and late data: Lakeflow's semantics)."""


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}: expected a mapping (name: value lines)")
    return value


def _one_of(value: Any, accepted: tuple[str, ...], where: str) -> str:
    if value not in accepted:
        raise ConfigurationError(f"{where}: {value!r} is not one of {', '.join(accepted)}")
    return str(value)


def _field(name: str, spec: Any, where: str) -> Field:
    spec = _mapping(spec, where)
    unknown = set(spec) - {"type", "role", "values", "delete", "personal"}
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a field has type, role, "
            "values, delete and personal"
        )
    role = spec.get("role")
    if role is not None:
        _one_of(role, ("key", "sequence"), f"{where}.role")
    values = spec.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigurationError(f"{where}.values: a list of strings, for example [a, b]")
    return Field(
        name=name,
        type=_one_of(spec.get("type"), FIELD_TYPES, f"{where}.type"),
        role=role,
        values=tuple(values),
        delete=None if spec.get("delete") is None else str(spec["delete"]),
        personal=bool(spec.get("personal", False)),
    )


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}: true or false, not {value!r}")
    return value


def _input(name: str, spec: Any, where: str) -> Input:
    spec = _mapping(spec, where)
    fields = tuple(
        _field(str(n), s, f"{where}.fields.{n}")
        for n, s in _mapping(spec.get("fields"), f"{where}.fields").items()
    )
    found = Input(
        name=name,
        folder=str(spec.get("folder", "") or ""),
        format=_one_of(spec.get("format", "json"), FORMATS, f"{where}.format"),
        fields=fields,
        changes=_flag(spec.get("changes", True), f"{where}.changes"),
        refuses=tuple(
            _one_of(f, FAULT_NAMES, f"{where}.refuses") for f in spec.get("refuses", []) or []
        ),
    )
    nested = [f.name for f in fields if "." in f.name]
    if nested and found.format != "json":
        raise ConfigurationError(
            f"{where}.fields: {', '.join(nested)}: dotted (nested) names need format: json"
        )
    if not found.keys:
        raise ConfigurationError(
            f"{where}.fields: give one field role: key (what a record is about)"
        )
    for spec in fields:
        if spec.role == "sequence" and spec.type not in SEQUENCE_TYPES:
            raise ConfigurationError(
                f"{where}.fields.{spec.name}: a sequence field is one of "
                f"{', '.join(SEQUENCE_TYPES)}, not {spec.type}"
            )
    if sum(f.delete is not None for f in fields) > 1:
        raise ConfigurationError(f"{where}.fields: one field at most marks deletes (delete:)")
    if found.delete_field is not None and found.sequence is None:
        raise ConfigurationError(
            f"{where}.fields: deletes need a field with role: sequence to order them"
        )
    return found


def harness_from(data: Any, where: str = "harness") -> Harness:
    """A harness from its parsed YAML (see the module docstring).

    Raises:
        ConfigurationError: a missing or malformed entry, named by its path.
    """
    data = _mapping(data, where)
    landing = data.get("landing")
    if not isinstance(landing, str) or not landing:
        raise ConfigurationError(
            f"{where}.landing: the --conf key your sources read the landing folder from, "
            "for example landing: customers.landing"
        )
    inputs = {
        str(n): _input(str(n), s, f"{where}.inputs.{n}")
        for n, s in _mapping(data.get("inputs"), f"{where}.inputs").items()
    }
    if not inputs:
        raise ConfigurationError(f"{where}.inputs: name at least one input")
    datasets = {}
    for name, spec in _mapping(data.get("datasets", {}), f"{where}.datasets").items():
        at = f"{where}.datasets.{name}"
        spec = _mapping(spec, at)
        input_name = spec.get("input", next(iter(inputs)))
        if input_name not in inputs:
            raise ConfigurationError(
                f"{at}.input: {input_name!r} is not an input ({', '.join(inputs)})"
            )
        judges = spec.get("judges")
        datasets[str(name)] = Dataset(
            str(name),
            _one_of(spec.get("role"), ROLES, f"{at}.role"),
            str(input_name),
            None if judges is None else str(judges),
        )
    for name, dataset in datasets.items():
        at = f"{where}.datasets.{name}"
        if dataset.role == "cdc_target" and inputs[dataset.input].sequence is None:
            raise ConfigurationError(
                f"{at}: a cdc_target's input needs a field with role: sequence (its sequence_by)"
            )
        raw = [n for n, d in datasets.items() if d.role == "raw" and d.input == dataset.input]
        if dataset.judges is not None and dataset.judges not in raw:
            raise ConfigurationError(
                f"{at}.judges: {dataset.judges!r} is not a raw dataset of {dataset.input} "
                f"({', '.join(raw) or 'none'})"
            )
        if dataset.role == "cleaned" and dataset.judges is None and len(raw) > 1:
            raise ConfigurationError(
                f"{at}: {dataset.input} has raw datasets {', '.join(raw)}: say which one's "
                "rows its expectations judge, for example judges: " + raw[0]
            )
    pseudonymized = data.get("pseudonymized", []) or []
    if not isinstance(pseudonymized, list) or not all(isinstance(n, str) for n in pseudonymized):
        raise ConfigurationError(
            f"{where}.pseudonymized: a list of dataset names, for example [silver_events]"
        )
    settings = {
        str(k): str(v) for k, v in _mapping(data.get("settings", {}), f"{where}.settings").items()
    }
    run_time = data.get("run_time_columns", []) or []
    if not isinstance(run_time, list) or not all(isinstance(n, str) for n in run_time):
        raise ConfigurationError(
            f"{where}.run_time_columns: a list of column names, for example [_ingested_at]"
        )
    differs = _mapping(data.get("full_refresh_differs_in", {}), f"{where}.full_refresh_differs_in")
    for scenario, reason in differs.items():
        at = f"{where}.full_refresh_differs_in.{scenario}"
        _one_of(scenario, FAULT_NAMES, at)
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigurationError(f"{at}: say why a full refresh differs there")
    return Harness(
        landing,
        inputs,
        datasets,
        settings,
        tuple(pseudonymized),
        tuple(run_time),
        {str(k): str(v) for k, v in differs.items()},
    )


def read_harness(path: Path) -> Harness:
    """The harness file at `path`.

    Raises:
        ConfigurationError: the file is missing, is not YAML, or is malformed (named).
    """
    if not path.is_file():
        raise ConfigurationError(f"no harness file {path}: write one (docs/dlt.md shows its form)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{path} is not valid YAML: {error}") from error
    return harness_from(data, str(path))
