"""Hypothesis strategies for random change feeds, and their translation into the model's terms.

No Spark here: the unit tests use these against the reference model, the Spark tests against
both. A feed is a list of rows shaped like `SCHEMA`, in arrival order, over many keys at once
(so one Spark job checks many histories). Value domains are tiny on purpose: changes equal to
the current version, ties on `at` broken by `n`, re-deliveries and deletes of absent keys all
come up often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from scenarios.scd_model import Change, Kind

SCHEMA = "tenant string, id int, op string, at int, n int, a int, b string"
COLUMNS = ("tenant", "id", "op", "at", "n", "a", "b")
KEYS = ("tenant", "id")
DELETES = "op = 'DELETE'"
TRUNCATES = "op = 'TRUNCATE'"

FeedRow = tuple[Any, ...]


@dataclass(frozen=True)
class Layout:
    """The AUTO CDC options a test applies (besides keys, sequence and delete rules)."""

    scd_type: int = 2
    column_list: tuple[str, ...] | None = None
    except_column_list: tuple[str, ...] | None = ("op", "at", "n")
    track_history_column_list: tuple[str, ...] | None = None
    track_history_except_column_list: tuple[str, ...] | None = None
    ignore_null_updates: bool = False

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The SCD table's columns before `__START_AT` and `__END_AT`."""
        if self.column_list is not None:
            return self.column_list
        return tuple(c for c in COLUMNS if c not in (self.except_column_list or ()))

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Output columns that are not keys."""
        return tuple(c for c in self.output_columns if c not in KEYS)

    @property
    def tracked(self) -> tuple[str, ...] | None:
        """The value columns whose change opens a version; None means all."""
        if self.track_history_column_list is not None:
            return tuple(c for c in self.value_columns if c in self.track_history_column_list)
        if self.track_history_except_column_list is not None:
            excluded = self.track_history_except_column_list
            return tuple(c for c in self.value_columns if c not in excluded)
        return None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for `apply_changes`, apart from keys, sequence and deletes."""
        options: dict[str, Any] = {
            "stored_as_scd_type": self.scd_type,
            "ignore_null_updates": self.ignore_null_updates,
        }
        for name in (
            "column_list",
            "except_column_list",
            "track_history_column_list",
            "track_history_except_column_list",
        ):
            value = getattr(self, name)
            if value is not None:
                options[name] = list(value)
        if self.scd_type == 1:
            options["apply_as_truncates"] = TRUNCATES
        return options


def _kind(op: str) -> Kind:
    return {"DELETE": "delete", "TRUNCATE": "truncate"}.get(op, "upsert")  # type: ignore[return-value]


def model_changes(rows: Sequence[FeedRow], layout: Layout) -> list[Change]:
    """The feed as the model's changes, under `layout`'s output columns."""
    changes = []
    for row in rows:
        record = dict(zip(COLUMNS, row, strict=True))
        kind = _kind(record["op"])
        values = tuple((c, record[c]) for c in layout.value_columns) if kind == "upsert" else ()
        changes.append(
            Change(
                key=(record["tenant"], record["id"]),
                sequence=(record["at"], record["n"]),
                kind=kind,
                values=values,
            )
        )
    return changes


_SEQUENCES = st.tuples(st.integers(0, 6), st.integers(0, 3))


@st.composite
def _history(draw: st.DrawFn, key: tuple[str, int]) -> list[FeedRow]:
    sequences = draw(st.lists(_SEQUENCES, min_size=1, max_size=8, unique=True))
    return [
        (
            *key,
            draw(st.sampled_from(("INSERT", "UPDATE", "UPDATE", "DELETE"))),
            at,
            n,
            draw(st.none() | st.integers(0, 2)),
            draw(st.none() | st.sampled_from(("p", "q"))),
        )
        for at, n in sequences
    ]


def _redelivered(row: FeedRow, noise: int) -> FeedRow:
    """The same change again, differing only where it has no effect."""
    tenant, id_, op, at, n, a, b = row
    if op == "DELETE":
        return (tenant, id_, op, at, n, noise, "noise")
    return (tenant, id_, {"INSERT": "UPDATE", "UPDATE": "INSERT"}.get(op, op), at, n, a, b)


@st.composite
def feeds(draw: st.DrawFn, *, allow_truncates: bool = False, max_keys: int = 8) -> list[FeedRow]:
    """Rows of a change feed over up to `max_keys` keys, in a random arrival order.

    Each key has up to 8 changes with distinct sequence values; some rows arrive twice (with
    the operation INSERT/UPDATE swapped, or a delete's values changed: no difference in
    effect). With `allow_truncates`, truncate rows with null keys and sequence values of their
    own are mixed in.
    """
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(("x", "y")), st.integers(0, 9)),
            min_size=1,
            max_size=max_keys,
            unique=True,
        )
    )
    rows = [row for key in keys for row in draw(_history(key))]
    repeats = draw(st.lists(st.sampled_from(rows), max_size=3))
    rows += [_redelivered(row, noise) for noise, row in enumerate(repeats)]
    if allow_truncates:
        used = {(row[3], row[4]) for row in rows}
        truncated_at = draw(
            st.lists(_SEQUENCES.filter(lambda s: s not in used), max_size=2, unique=True)
        )
        rows += [(None, None, "TRUNCATE", at, n, None, None) for at, n in truncated_at]
    return list(draw(st.permutations(rows)))


_SELECTIONS: tuple[tuple[tuple[str, ...] | None, tuple[str, ...] | None], ...] = (
    (None, ("op", "at", "n")),  # column_list, except_column_list
    (None, ("op",)),  # the sequence fields are output columns, so each upsert differs
    (("b", "id", "tenant", "a"), None),  # reordered
)


@st.composite
def layouts(draw: st.DrawFn, *, scd_types: Sequence[int] = (1, 2)) -> Layout:
    """AUTO CDC options: SCD type, column selection, history tracking, null handling."""
    column_list, except_column_list = draw(st.sampled_from(_SELECTIONS))
    layout = Layout(
        scd_type=draw(st.sampled_from(scd_types)),
        column_list=column_list,
        except_column_list=except_column_list,
        ignore_null_updates=draw(st.booleans()),
    )
    if layout.scd_type == 1:
        return layout
    subset = tuple(draw(st.lists(st.sampled_from(layout.value_columns), unique=True)))
    tracking = draw(st.sampled_from(("all", "only", "except")))
    if tracking == "only":
        return replace(layout, track_history_column_list=subset)
    if tracking == "except":
        return replace(layout, track_history_except_column_list=subset)
    return layout
