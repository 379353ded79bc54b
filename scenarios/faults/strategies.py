"""Hypothesis strategies for combinations of faults, so that a failing case shrinks by structure.

`fault_draws` draws one to three distinct faults, each with its own seed and knobs from modest
ranges. Hypothesis shrinks the list (fewer faults), each knob (towards no fault at all: a
fraction towards 0, a flag towards False) and each seed, so the smallest failing case it
reports is small in every part, not only in the numbers that happened to seed `random`.
Kept apart from the rest of `scenarios.faults`, which needs no Hypothesis.
"""

from __future__ import annotations

from hypothesis import strategies as st

from scenarios.faults.combine import COMBINABLE_FAULTS, FaultDraw

__all__ = ["fault_draws"]

Knobs = st.SearchStrategy[dict[str, object]]


def _fraction(high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=high, allow_nan=False)


def _knobs(*, beside_late_data: bool) -> dict[str, Knobs]:
    """Each fault's knobs; clock skew draws no future events beside late data (`combination`
    refuses that pair: the future events would move the watermark past the late copies)."""
    future = st.just(0.0) if beside_late_data else _fraction(0.1)
    return {
        "late_data": st.fixed_dictionaries(
            {"late_fraction": _fraction(0.2), "within_fraction": _fraction(1)}
        ),
        "schema_drift": st.fixed_dictionaries({"drift_fraction": _fraction(0.3)}),
        "duplicates": st.fixed_dictionaries(
            {
                "exact_fraction": _fraction(0.2),
                "conflicting_fraction": _fraction(0.2),
                "redeliver_file": st.booleans(),
            }
        ),
        "pii_in_unexpected_places": st.fixed_dictionaries({"pii_fraction": _fraction(0.3)}),
        "clock_skew": st.fixed_dictionaries(
            {
                "future_fraction": future,
                "zone_fraction": _fraction(0.2),
                "format_fraction": _fraction(0.2),
            }
        ),
        "burst": st.fixed_dictionaries(
            {"factor": st.floats(min_value=1, max_value=5, allow_nan=False)}
        ),
        "corrupt_records": st.fixed_dictionaries(
            {"corrupt_fraction": _fraction(0.3), "allow_long_line": st.booleans()}
        ),
        "out_of_order_changes": st.fixed_dictionaries(
            {
                "batches": st.integers(min_value=1, max_value=3),
                "delete_fraction": _fraction(0.2),
                "reinsert_fraction": _fraction(1),
                "tie_fraction": _fraction(0.2),
            }
        ),
    }


@st.composite
def fault_draws(
    draw: st.DrawFn, *, min_faults: int = 1, max_faults: int = 3
) -> tuple[FaultDraw, ...]:
    """Distinct faults of `COMBINABLE_FAULTS` (between `min_faults` and `max_faults`), each
    with a seed and knobs, ready for `combination`."""
    names = draw(
        st.lists(
            st.sampled_from(sorted(COMBINABLE_FAULTS)),
            min_size=min_faults,
            max_size=max_faults,
            unique=True,
        )
    )
    knobs = _knobs(beside_late_data="late_data" in names)
    faults = []
    for name in names:
        seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
        values = draw(knobs[name])
        faults.append(FaultDraw(name, seed, tuple(sorted(values.items()))))
    return tuple(faults)
