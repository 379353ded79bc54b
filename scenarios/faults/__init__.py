"""Fault generators: seeded, deterministic scenario inputs with the expectations they imply.

Each generator is a pure function of clean data (from `scenarios.generator`) and keyword-only
knobs, returning an `Injection`: the landing files to write before each pipeline run and what
the invariants may assume. Nothing here imports Spark. Typical use::

    events = generate_events(events=5_000, seed=7)
    injection = late_data(events, seed=7, late_fraction=0.05)
    for delivery in injection.deliveries:
        write_delivery(landing, delivery)
        run_pipeline(...)  # then check the invariants against `injection`

Modules: `model` (data types, the record counting rule, `write_delivery`), one module per
fault (`late`, `drift`, `corrupt`, `replay` for duplicates, `cdc`, `pii`, `clock`, `volume`
for bursts) and `combine` (`compose`, `combination` of `FaultDraw`s, `describe`). Fuzz mode
draws the combinations with Hypothesis (`scenarios/fuzz.py`).
"""

from __future__ import annotations

from scenarios.faults._common import DEFAULT_WATERMARK_DELAY, MAX_FILES_PER_RUN
from scenarios.faults.cdc import out_of_order_changes
from scenarios.faults.clock import CLOCK_KINDS, FORMAT_KINDS, ZONE_OFFSETS, clock_skew
from scenarios.faults.combine import (
    COMBINABLE_FAULTS,
    FaultDraw,
    combination,
    compose,
    describe,
    split_events,
)
from scenarios.faults.corrupt import DEFAULT_CORPUS, LINE_KINDS, corrupt_records
from scenarios.faults.drift import DRIFT_KINDS, schema_drift
from scenarios.faults.late import late_data
from scenarios.faults.model import (
    UTF8_BOM,
    ClockCase,
    Conflict,
    Delivery,
    DriftCase,
    FaultArgumentError,
    IncompatibleFaultsError,
    Injection,
    LandingFile,
    PiiPlant,
    count_records,
    is_blank,
    split_lines,
    write_delivery,
)
from scenarios.faults.pii import PII_KINDS, pii_in_unexpected_places
from scenarios.faults.replay import duplicates
from scenarios.faults.volume import burst

__all__ = [
    "CLOCK_KINDS",
    "COMBINABLE_FAULTS",
    "DEFAULT_CORPUS",
    "DEFAULT_WATERMARK_DELAY",
    "DRIFT_KINDS",
    "FORMAT_KINDS",
    "LINE_KINDS",
    "MAX_FILES_PER_RUN",
    "PII_KINDS",
    "UTF8_BOM",
    "ZONE_OFFSETS",
    "ClockCase",
    "Conflict",
    "Delivery",
    "DriftCase",
    "FaultArgumentError",
    "FaultDraw",
    "IncompatibleFaultsError",
    "Injection",
    "LandingFile",
    "PiiPlant",
    "burst",
    "clock_skew",
    "combination",
    "compose",
    "corrupt_records",
    "count_records",
    "describe",
    "duplicates",
    "is_blank",
    "late_data",
    "out_of_order_changes",
    "pii_in_unexpected_places",
    "schema_drift",
    "split_events",
    "split_lines",
    "write_delivery",
]
