"""PII in unexpected places: personal data copied into fields that are not PII columns."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from scenarios.faults._common import (
    Event,
    assign_kinds,
    check_events,
    check_fraction,
    copy_event,
    count_kinds,
    latest,
    records_by_file,
    seeded,
    share,
    single_delivery,
)
from scenarios.faults.model import Injection, PiiPlant

__all__ = ["PII_KINDS", "encoded", "pii_in_unexpected_places"]

PII_KINDS = (
    "url_query_clear",
    "url_query_encoded",
    "page_title",
    "referrer",
    "free_text_note",
)
"""Where `pii_in_unexpected_places` plants personal data."""

_WEBMAIL = "https://webmail.example.net/message"


def encoded(email: str) -> str:
    """The e-mail address percent-encoded as in a query string (``@`` as ``%40``)."""
    return quote(email, safe="")


def _with_query(url: str, parameter: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{parameter}"


def _plant(kind: str, event: Event, rng: random.Random) -> PiiPlant:
    """Plant the event's own e-mail (and, in the note, full name) in the field of `kind`."""
    email, full_name = event["user"]["email"], event["user"]["full_name"]
    page = event["page"]
    if kind == "url_query_clear":
        page["url"] = _with_query(page["url"], f"email={email}")
        return PiiPlant(kind, event["event_id"], ("page", "url"), (email,))
    if kind == "url_query_encoded":
        page["url"] = _with_query(page["url"], f"email={encoded(email)}")
        return PiiPlant(kind, event["event_id"], ("page", "url"), (encoded(email),))
    if kind == "page_title":
        page["title"] = f"{page['title']} - signed in as {email}"
        return PiiPlant(kind, event["event_id"], ("page", "title"), (email,))
    if kind == "referrer":
        page["referrer"] = f"{_WEBMAIL}?id={rng.randrange(10**6)}&to={email}"
        return PiiPlant(kind, event["event_id"], ("page", "referrer"), (email,))
    note = f"Please call {full_name} back, or write to {email}."
    event["properties"]["note"] = note
    return PiiPlant(kind, event["event_id"], ("properties", "note"), (full_name, email))


def pii_in_unexpected_places(
    events: Sequence[Mapping[str, Any]], *, seed: int, pii_fraction: float = 0.05
) -> Injection:
    """Deliver `events` with the user's personal data planted in non-PII fields, in one run.

    ``pii_fraction`` of the events carry their own user's e-mail address, spread evenly over
    `PII_KINDS`:

    * ``url_query_clear``: ``page.url`` gets ``?email=<address>`` (or ``&email=``);
    * ``url_query_encoded``: the same with the address percent-encoded (``%40`` for ``@``);
    * ``page_title``: ``page.title`` ends with ``- signed in as <address>``;
    * ``referrer``: ``page.referrer`` is a webmail URL with ``to=<address>``;
    * ``free_text_note``: an unknown field ``properties.note`` (so rescued in bronze) with the
      full name and the address.

    ``pii_values`` holds, for every planted event, the clear address, its percent-encoded
    form and (for notes) the full name: no string in silver or gold may contain any of them,
    in whichever form. Values appear inside longer strings, so compare by substring.

    Args:
        events: Clean events.
        seed: Any int; the same seed and knobs give byte-identical deliveries.
        pii_fraction: Share of `events` given planted PII, in [0, 1].

    Returns:
        One delivery; ``pii`` lists each plant (event, field path, values); every event must
        reach silver.

    Raises:
        FaultArgumentError: If a knob is out of range.
    """
    check_fraction("pii_fraction", pii_fraction)
    check_events(events)
    rng = seeded("pii_in_unexpected_places", seed)
    count = share(pii_fraction, len(events))
    kinds = assign_kinds(len(events), count, PII_KINDS, rng)

    written: list[Mapping[str, Any]] = []
    plants: list[PiiPlant] = []
    values: set[str] = set()
    for index, event in enumerate(events):
        if index not in kinds:
            written.append(event)
            continue
        planted = copy_event(event)
        plants.append(_plant(kinds[index], planted, rng))
        written.append(planted)
        email = planted["user"]["email"]
        values |= {email, encoded(email), *plants[-1].values}
    deliveries = single_delivery("pii", seed, written)
    by_file = records_by_file(deliveries)
    ids = frozenset(event["event_id"] for event in events)
    return Injection(
        deliveries=deliveries,
        injected=count_kinds(PII_KINDS, kinds),
        records=sum(by_file.values()),
        description=(
            f"{count} events carry their user's e-mail address in the page URL (clear and "
            "percent-encoded), page title, referrer or a free-text note."
        ),
        records_by_file=by_file,
        event_ids=ids,
        silver_ids=ids,
        pii=tuple(plants),
        pii_values=frozenset(values),
        max_event_time=(latest(events),),
        min_on_time=(None,),
    )
