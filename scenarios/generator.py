"""Seeded synthetic clickstream events and user-profile CDC feed.

Everything derives from one ``random.Random`` seeded from ``seed``: faker (seeded
with the same value) only fills small pools up front (names, e-mail domains,
IPs, brands, colours); users, the product catalogue, profile histories and
sessions are then drawn from those pools. The same seed and knobs therefore give
byte-identical output.

A session belongs to one user and one device, starts with a ``page_view`` and
walks the funnel page_view -> add_to_cart -> checkout -> purchase with drop-off,
browsing (page_view, click, search) in between. Event attributes that come from
the user profile (email, full name, country, city, currency) are those of the
profile version in force at the event's time, so every event joins a version of
the CDC feed; deleted users have no events at or after their DELETE.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate, islice, pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote_plus

import orjson
from faker import Faker

from pipeline.errors import InputError

__all__ = [
    "DEFAULT_START",
    "EPOCH",
    "LandingSlice",
    "LandingSummary",
    "events_name",
    "generate_events",
    "generate_user_changes",
    "landing_contents",
    "time_slices",
    "user_changes_name",
    "write_atomically",
    "write_landing",
]

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DAY_MS = 86_400_000
_SCHEMA_VERSION = 1
_PROGRESS_EVERY = 50_000

_P_ADD_TO_CART = 0.30
_P_CHECKOUT = 0.50
_P_PURCHASE = 0.70
_MEAN_UPDATES_PER_USER = 0.3
_P_DELETE = 0.02
_DELETE_FROM = 0.8  # deletions fall in the last 20 % of the window

_SHOP = "https://shop.example.com"
_SHOP_NAME = "Example Shop"
_CATALOG_SIZE = 1_000
_SEARCH_TERMS = 120
_NULL_PROPERTIES: Mapping[str, None] = {
    "product_id": None,
    "price": None,
    "currency": None,
    "quantity": None,
}


@dataclass(frozen=True, slots=True)
class _Country:
    code: str
    locale: str
    currency: str
    eur_rate: float
    cities: tuple[str, ...]


_COUNTRIES = tuple(
    _Country(code, locale, currency, eur_rate, tuple(cities.split(", ")))
    for code, locale, currency, eur_rate, cities in (
        ("US", "en_US", "USD", 1.08, "New York, Los Angeles, Chicago, Houston, Seattle, Boston"),
        ("GB", "en_GB", "GBP", 0.85, "London, Manchester, Birmingham, Leeds, Glasgow, Bristol"),
        ("DE", "de_DE", "EUR", 1.0, "Berlin, Hamburg, München, Köln, Frankfurt am Main, Stuttgart"),
        ("FR", "fr_FR", "EUR", 1.0, "Paris, Lyon, Marseille, Toulouse, Nice, Bordeaux"),
        ("ES", "es_ES", "EUR", 1.0, "Madrid, Barcelona, Valencia, Sevilla, Bilbao, Málaga"),
        ("IT", "it_IT", "EUR", 1.0, "Roma, Milano, Napoli, Torino, Firenze, Bologna"),
        ("NL", "nl_NL", "EUR", 1.0, "Amsterdam, Rotterdam, Den Haag, Utrecht, Eindhoven, Leiden"),
        ("SE", "sv_SE", "SEK", 11.5, "Stockholm, Göteborg, Malmö, Uppsala, Västerås, Örebro"),
    )
)
_COUNTRY_WEIGHTS = (30, 12, 15, 12, 8, 8, 8, 7)


@dataclass(frozen=True, slots=True)
class _Device:
    type: str
    os: str
    browser: str
    user_agent: str


_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
_IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)"
_IPAD = "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X)"
_ANDROID = "Mozilla/5.0 (Linux; Android 10; K)"
_CHROME = "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0"
_SAFARI = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1"
_WINDOWS_FIREFOX = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
)
_SAMSUNG = "AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0"
_DEVICES = (
    _Device("desktop", "Windows", "Chrome", f"{_WINDOWS} {_CHROME} Safari/537.36"),
    _Device("desktop", "Windows", "Edge", f"{_WINDOWS} {_CHROME} Safari/537.36 Edg/131.0.0.0"),
    _Device("desktop", "Windows", "Firefox", _WINDOWS_FIREFOX),
    _Device("desktop", "macOS", "Safari", f"{_MAC} {_SAFARI} Safari/605.1.15"),
    _Device("mobile", "iOS", "Safari", f"{_IPHONE} {_SAFARI} Mobile/15E148 Safari/604.1"),
    _Device("mobile", "Android", "Chrome", f"{_ANDROID} {_CHROME} Mobile Safari/537.36"),
    _Device("mobile", "Android", "Samsung Internet", f"{_ANDROID} {_SAMSUNG} Mobile Safari/537.36"),
    _Device("tablet", "iPadOS", "Safari", f"{_IPAD} {_SAFARI} Mobile/15E148 Safari/604.1"),
    _Device("tablet", "Android", "Chrome", f"{_ANDROID} {_CHROME} Safari/537.36"),
)
_DEVICE_WEIGHTS = (22, 5, 5, 8, 25, 22, 5, 6, 2)
_P_SECOND_DEVICE = 0.35

# (slug, category name, product noun, typical price in EUR)
_CATEGORIES = (
    ("sneakers", "Sneakers", "Sneaker", 89.0),
    ("jackets", "Jackets", "Jacket", 129.0),
    ("backpacks", "Backpacks", "Backpack", 59.0),
    ("headphones", "Headphones", "Headphones", 149.0),
    ("watches", "Watches", "Watch", 199.0),
    ("lamps", "Lamps", "Desk Lamp", 45.0),
    ("mugs", "Mugs", "Mug", 14.0),
    ("yoga", "Yoga", "Yoga Mat", 35.0),
    ("sunglasses", "Sunglasses", "Sunglasses", 79.0),
    ("bottles", "Bottles", "Water Bottle", 24.0),
)
_EXTERNAL_REFERRERS = (
    None,
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://www.instagram.com/",
    "https://www.facebook.com/",
    "https://newsletter.example.com/weekly",
)
_EXTERNAL_REFERRER_WEIGHTS = (40, 35, 5, 8, 7, 5)
_PLANS = ("free", "pro", "enterprise")
_PLAN_WEIGHTS = (70, 25, 5)
_PLAN_CHANGE = {"free": "pro", "pro": "enterprise", "enterprise": "pro"}
_QUANTITIES = (1, 2, 3)
_QUANTITY_WEIGHTS = (80, 15, 5)


@dataclass(frozen=True)
class LandingSummary:
    """What `write_landing` wrote.

    Attributes:
        events: Number of event lines written over all event files.
        event_files: The event files, in chronological order.
        user_changes: Number of CDC lines written.
        change_files: The CDC files.
    """

    events: int
    event_files: tuple[Path, ...]
    user_changes: int
    change_files: tuple[Path, ...]


# --------------------------------------------------------------------------- world


@dataclass(frozen=True, slots=True)
class _Pools:
    """Faker-made value pools, per country where values are locale specific."""

    first_names: Mapping[str, tuple[str, ...]]
    last_names: Mapping[str, tuple[str, ...]]
    email_domains: Mapping[str, tuple[str, ...]]
    ips: tuple[str, ...]
    brands: tuple[str, ...]
    colors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Product:
    product_id: str
    title: str
    prices: Mapping[str, float]  # by currency


@dataclass(frozen=True, slots=True)
class _Page:
    url: str
    title: str
    product: _Product | None = None


@dataclass(frozen=True, slots=True)
class _Profile:
    """One version of a user profile, i.e. one CDC row."""

    changed_ms: int
    operation: str
    email: str
    full_name: str
    plan: str
    country: _Country
    city: str


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    ip: str
    devices: tuple[_Device, ...]
    history: tuple[_Profile, ...]  # INSERT, UPDATE*, optional DELETE; strictly increasing times
    change_ms: tuple[int, ...]

    @property
    def deleted_ms(self) -> int | None:
        last = self.history[-1]
        return last.changed_ms if last.operation == "DELETE" else None

    def profile_at(self, ts_ms: int) -> _Profile:
        if len(self.history) == 1:
            return self.history[0]
        return self.history[bisect_right(self.change_ms, ts_ms) - 1]


@dataclass(frozen=True, slots=True)
class _World:
    start_ms: int
    end_ms: int  # exclusive
    users: tuple[_User, ...]
    user_cum_weights: tuple[float, ...]
    home: _Page
    category_pages: tuple[_Page, ...]
    product_pages: tuple[_Page, ...]
    product_cum_weights: tuple[float, ...]
    search_pages: tuple[_Page, ...]
    checkout: _Page
    confirmation: _Page


@lru_cache(maxsize=8)
def _faker_pools(seed: int) -> _Pools:
    fake = Faker([country.locale for country in _COUNTRIES])
    fake.seed_instance(_seed_material(seed))
    by_locale = {country.code: fake[country.locale] for country in _COUNTRIES}
    us = by_locale["US"]
    return _Pools(
        first_names={
            code: tuple(f.first_name() for _ in range(80)) for code, f in by_locale.items()
        },
        last_names={code: tuple(f.last_name() for _ in range(80)) for code, f in by_locale.items()},
        email_domains={
            code: tuple(sorted({f.free_email_domain() for _ in range(30)}))
            for code, f in by_locale.items()
        },
        ips=tuple(us.ipv4_public() for _ in range(4_096)),
        brands=tuple(sorted({us.last_name() for _ in range(60)})),
        colors=tuple(sorted({us.safe_color_name().title() for _ in range(60)})),
    )


def _seed_material(seed: int) -> str:
    # random.Random(int) ignores the sign; a string keeps seeds 5 and -5 apart. The prefix
    # names the module's first home: kept, so that a seed gives the data it always gave.
    return f"pipeline.generator:{seed}"


def _build_world(
    rng: random.Random, pools: _Pools, *, users: int, start_ms: int, end_ms: int
) -> _World:
    catalog = _build_catalog(rng, pools)
    product_pages = tuple(
        _Page(f"{_SHOP}/p/{p.product_id}", f"{p.title} | {_SHOP_NAME}", p) for p in catalog
    )
    terms = dict.fromkeys(
        f"{rng.choice(pools.colors)} {rng.choice(_CATEGORIES)[2]}".lower()
        for _ in range(_SEARCH_TERMS)
    )
    population = tuple(
        _build_user(rng, pools, number, start_ms, end_ms) for number in range(1, users + 1)
    )
    return _World(
        start_ms=start_ms,
        end_ms=end_ms,
        users=population,
        user_cum_weights=tuple(accumulate(rng.paretovariate(2.0) for _ in population)),
        home=_Page(f"{_SHOP}/", f"{_SHOP_NAME} | Online Store"),
        category_pages=tuple(
            _Page(f"{_SHOP}/c/{slug}", f"{name} | {_SHOP_NAME}") for slug, name, _, _ in _CATEGORIES
        ),
        product_pages=product_pages,
        product_cum_weights=tuple(
            accumulate(1.0 / rank**0.8 for rank in range(1, len(catalog) + 1))
        ),
        search_pages=tuple(
            _Page(f"{_SHOP}/search?q={quote_plus(term)}", f"Search: {term} | {_SHOP_NAME}")
            for term in terms
        ),
        checkout=_Page(f"{_SHOP}/checkout", f"Checkout | {_SHOP_NAME}"),
        confirmation=_Page(f"{_SHOP}/checkout/confirmation", f"Order confirmation | {_SHOP_NAME}"),
    )


def _build_catalog(rng: random.Random, pools: _Pools) -> list[_Product]:
    catalog = []
    for index in range(_CATALOG_SIZE):
        _, _, noun, typical_eur = rng.choice(_CATEGORIES)
        eur = max(1, round(typical_eur * rng.lognormvariate(0.0, 0.4))) - 0.01
        catalog.append(
            _Product(
                product_id=f"sku-{index:05d}",
                title=f"{rng.choice(pools.brands)} {rng.choice(pools.colors)} {noun}",
                prices={c.currency: round(eur * c.eur_rate, 2) for c in _COUNTRIES},
            )
        )
    return catalog


def _build_user(
    rng: random.Random, pools: _Pools, number: int, start_ms: int, end_ms: int
) -> _User:
    country = rng.choices(_COUNTRIES, weights=_COUNTRY_WEIGHTS)[0]
    first = rng.choice(pools.first_names[country.code])
    last = rng.choice(pools.last_names[country.code])
    user_id = f"u-{number:06d}"
    devices = [rng.choices(_DEVICES, weights=_DEVICE_WEIGHTS)[0]]
    if rng.random() < _P_SECOND_DEVICE:
        devices.append(rng.choice([d for d in _DEVICES if d != devices[0]]))
    profile = _Profile(
        changed_ms=start_ms - rng.randrange(1, 365 * _DAY_MS),
        operation="INSERT",
        email=f"{_slug(first)}.{_slug(last)}{number}@{rng.choice(pools.email_domains[country.code])}",
        full_name=f"{first} {last}",
        plan=rng.choices(_PLANS, weights=_PLAN_WEIGHTS)[0],
        country=country,
        city=rng.choice(country.cities),
    )
    history = [profile]
    updates = 0
    while rng.random() < _MEAN_UPDATES_PER_USER / (
        1 + _MEAN_UPDATES_PER_USER
    ):  # geometric, mean 0.3
        updates += 1
    window_ms = end_ms - start_ms
    deleted = rng.random() < _P_DELETE and window_ms >= 2
    # the DELETE time if any, else the window end: updates fall in [start_ms, stop_ms)
    stop_ms = (
        start_ms + rng.randrange(int(window_ms * _DELETE_FROM) or 1, window_ms)
        if deleted
        else end_ms
    )
    for changed_ms in sorted(
        rng.sample(range(start_ms, stop_ms), min(updates, stop_ms - start_ms))
    ):
        profile = _updated(
            rng, pools, profile, changed_ms, f"{_slug(first)}{_slug(last)}{number}.{len(history)}"
        )
        history.append(profile)
    if deleted:
        history.append(replace(profile, changed_ms=stop_ms, operation="DELETE"))
    return _User(
        user_id=user_id,
        ip=rng.choice(pools.ips),
        devices=tuple(devices),
        history=tuple(history),
        change_ms=tuple(p.changed_ms for p in history),
    )


def _updated(
    rng: random.Random, pools: _Pools, profile: _Profile, changed_ms: int, new_local: str
) -> _Profile:
    """An UPDATE of `profile`: a plan change, a move or a new e-mail address."""
    update = replace(profile, changed_ms=changed_ms, operation="UPDATE")
    roll = rng.random()
    if roll < 0.4:
        return replace(update, plan=_PLAN_CHANGE[profile.plan])
    if roll < 0.75:
        country = profile.country
        if rng.random() < 0.3:
            country = rng.choice([c for c in _COUNTRIES if c != country])
        city = rng.choice([c for c in country.cities if c != profile.city])
        return replace(update, country=country, city=city)
    return replace(
        update, email=f"{new_local}@{rng.choice(pools.email_domains[profile.country.code])}"
    )


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_name.lower() if ch.isalnum()) or "user"


# ------------------------------------------------------------------------ sessions


class _Step(NamedTuple):
    event_type: str
    page: _Page
    referrer: str | None
    product: _Product | None
    quantity: int | None


@dataclass(frozen=True, slots=True)
class _Session:
    session_id: str
    user: _User
    device: _Device


class _Planned(NamedTuple):
    ts_ms: int
    session: _Session
    event_type: str
    page: _Page
    referrer: str | None
    product: _Product | None
    quantity: int | None


class _Walk:
    """A shopper's path through the shop in one session, as event skeletons."""

    def __init__(self, rng: random.Random, world: _World) -> None:
        self._rng = rng
        self._world = world
        self.steps: list[_Step] = []
        self._page = self._any_page()
        self._referrer = rng.choices(_EXTERNAL_REFERRERS, weights=_EXTERNAL_REFERRER_WEIGHTS)[0]
        self._emit("page_view", self._page.product)

    def browse(self, count: int) -> None:
        for _ in range(count):
            roll = self._rng.random()
            if roll < 0.5:
                self._view(self._any_page())
            elif roll < 0.8:  # click a product tile, then land on its page
                target = self._product_page()
                self._emit("click", target.product)
                self._view(target)
            else:
                self._go(self._rng.choice(self._world.search_pages))
                self._emit("search", None)

    def add_to_cart(self) -> tuple[_Product, int]:
        if self._page.product is None:
            self._view(self._product_page())
        product = self._page.product
        assert product is not None
        quantity = self._rng.choices(_QUANTITIES, weights=_QUANTITY_WEIGHTS)[0]
        self._emit("add_to_cart", product, quantity)
        return product, quantity

    def checkout(self, product: _Product, quantity: int) -> None:
        self._go(self._world.checkout)
        self._emit("checkout", product, quantity)

    def purchase(self, product: _Product, quantity: int) -> None:
        self._go(self._world.confirmation)
        self._emit("purchase", product, quantity)

    def _view(self, page: _Page) -> None:
        self._go(page)
        self._emit("page_view", page.product)

    def _go(self, page: _Page) -> None:
        self._page, self._referrer = page, self._page.url

    def _emit(self, event_type: str, product: _Product | None, quantity: int = 1) -> None:
        self.steps.append(
            _Step(
                event_type,
                self._page,
                self._referrer,
                product,
                None if product is None else quantity,
            )
        )

    def _any_page(self) -> _Page:
        roll = self._rng.random()
        if roll < 0.15:
            return self._world.home
        if roll < 0.45:
            return self._rng.choice(self._world.category_pages)
        return self._product_page()

    def _product_page(self) -> _Page:
        world = self._world
        return self._rng.choices(world.product_pages, cum_weights=world.product_cum_weights)[0]


def _session_steps(rng: random.Random, world: _World) -> list[_Step]:
    walk = _Walk(rng, world)
    walk.browse(rng.randint(0, 6))
    if rng.random() < _P_ADD_TO_CART:
        cart = walk.add_to_cart()
        walk.browse(rng.randint(0, 2))
        if rng.random() < _P_CHECKOUT:
            walk.checkout(*cart)
            if rng.random() < _P_PURCHASE:
                walk.purchase(*cart)
    return walk.steps


def _plan_events(rng: random.Random, world: _World, count: int) -> list[_Planned]:
    """Exactly `count` event skeletons, sorted by time (stable: ties keep session order).

    Sessions start uniformly in the window (before the DELETE for deleted users)
    and are cut at the window end or the DELETE; the last one is cut at `count`.
    """
    planned: list[_Planned] = []
    while len(planned) < count:
        user = rng.choices(world.users, cum_weights=world.user_cum_weights)[0]
        stop_ms = world.end_ms if user.deleted_ms is None else user.deleted_ms
        session = _Session(_uuid4(rng), user, rng.choice(user.devices))
        ts_ms = world.start_ms + rng.randrange(stop_ms - world.start_ms)
        for step in _session_steps(rng, world):
            if ts_ms >= stop_ms or len(planned) == count:
                break
            planned.append(_Planned(ts_ms, session, *step))
            ts_ms += min(1_000 + int(rng.expovariate(1 / 25_000)), 600_000)  # seconds to minutes
    planned.sort(key=itemgetter(0))
    return planned


# ----------------------------------------------------------------------- rendering


def _uuid4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds and 'Z' (hand-rolled: 3x faster than strftime)."""
    days, rem = divmod(ms, _DAY_MS)
    hours, rem = divmod(rem, 3_600_000)
    minutes, rem = divmod(rem, 60_000)
    seconds, millis = divmod(rem, 1_000)
    return f"{_iso_date(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


@lru_cache(maxsize=1_024)
def _iso_date(days_since_epoch: int) -> str:
    return (EPOCH + timedelta(days=days_since_epoch)).date().isoformat()


def _render_event(rng: random.Random, planned: _Planned) -> dict[str, Any]:
    ts_ms, session, event_type, page, referrer, product, quantity = planned
    user, device = session.user, session.device
    profile = user.profile_at(ts_ms)
    return {
        "event_id": _uuid4(rng),
        "event_type": event_type,
        "event_ts": _iso_ms(ts_ms),
        "session_id": session.session_id,
        "user": {
            "user_id": user.user_id,
            "email": profile.email,
            "full_name": profile.full_name,
            "ip": user.ip,
        },
        "page": {"url": page.url, "referrer": referrer, "title": page.title},
        "device": {
            "type": device.type,
            "os": device.os,
            "browser": device.browser,
            "user_agent": device.user_agent,
        },
        "geo": {"country": profile.country.code, "city": profile.city},
        "properties": _properties(product, quantity, profile.country.currency),
        "schema_version": _SCHEMA_VERSION,
    }


def _properties(product: _Product | None, quantity: int | None, currency: str) -> dict[str, Any]:
    if product is None:
        return dict(_NULL_PROPERTIES)
    return {
        "product_id": product.product_id,
        "price": product.prices[currency],
        "currency": currency,
        "quantity": quantity,
    }


def _render_stream(
    rng: random.Random, planned: Sequence[_Planned], progress: Callable[[int, int], None] | None
) -> Iterator[dict[str, Any]]:
    """Render `planned` in order, reporting every `_PROGRESS_EVERY` events (not the final total)."""
    total = len(planned)
    for done, item in enumerate(planned, start=1):
        yield _render_event(rng, item)
        if progress is not None and done % _PROGRESS_EVERY == 0 and done < total:
            progress(done, total)


def _change_rows(world: _World) -> list[dict[str, Any]]:
    versions = sorted(
        ((user, profile) for user in world.users for profile in user.history),
        key=lambda pair: pair[1].changed_ms,
    )
    return [
        {
            "user_id": user.user_id,
            "operation": profile.operation,
            "sequence_num": sequence_num,
            "changed_at": _iso_ms(profile.changed_ms),
            "email": profile.email,
            "full_name": profile.full_name,
            "plan": profile.plan,
            "country": profile.country.code,
            "city": profile.city,
        }
        for sequence_num, (user, profile) in enumerate(versions, start=1)
    ]


# ----------------------------------------------------------------------------- API


def _validate(
    *, events: int | None, users: int | None, start: datetime, duration: timedelta
) -> None:
    if events is not None and events < 0:
        raise ValueError(f"events must be >= 0, got {events}")
    if users is not None and users < 1:
        raise ValueError(f"users must be >= 1 when given, got {users}")
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(
            f"start must be timezone-aware (e.g. tzinfo=UTC), got naive {start.isoformat()}"
        )
    if duration < _MS:
        raise ValueError(
            f"duration must be > 0 (at least 1 ms, the timestamp resolution), got {duration}"
        )


def _simulation(
    *, seed: int, users: int, start: datetime, duration: timedelta
) -> tuple[random.Random, _World]:
    start_ms = -((EPOCH - start) // _MS)  # ceiling, so no timestamp precedes `start`
    rng = random.Random(_seed_material(seed))
    world = _build_world(
        rng, _faker_pools(seed), users=users, start_ms=start_ms, end_ms=start_ms + duration // _MS
    )
    return rng, world


def _default_users(events: int) -> int:
    return max(10, events // 50)


def generate_events(
    *,
    events: int,
    seed: int,
    users: int | None = None,
    start: datetime = DEFAULT_START,
    duration: timedelta = timedelta(days=1),
) -> list[dict[str, Any]]:
    """Generate clickstream events in memory.

    Args:
        events: Number of events, >= 0.
        seed: Any int; the same seed and knobs give the same events.
        users: Size of the user population, >= 1; default ``max(10, events // 50)``.
        start: Timezone-aware start of the event window.
        duration: Length of the event window, > 0 (at least 1 ms).

    Returns:
        The events as JSON-ready dicts in chronological order; the same events,
        in the same order, that `write_landing` spreads over its files.

    Raises:
        ValueError: If an argument is out of range.
    """
    _validate(events=events, users=users, start=start, duration=duration)
    rng, world = _simulation(
        seed=seed,
        users=_default_users(events) if users is None else users,
        start=start,
        duration=duration,
    )
    return list(_render_stream(rng, _plan_events(rng, world, events), None))


def generate_user_changes(
    *,
    seed: int,
    users: int,
    start: datetime = DEFAULT_START,
    duration: timedelta = timedelta(days=1),
) -> list[dict[str, Any]]:
    """Generate the user-profile CDC feed that matches `generate_events`.

    Every user has an INSERT before `start`, then about 0.3 UPDATEs on average
    inside the window; about 2 % get a DELETE in the last fifth of the window.
    ``sequence_num`` counts all rows in ``changed_at`` order from 1, so it is
    strictly increasing per user.

    Args:
        seed: Any int; must match the events' seed.
        users: Size of the user population, >= 1; must match the events' users.
        start: Timezone-aware start of the event window.
        duration: Length of the event window, > 0 (at least 1 ms).

    Returns:
        The change rows as JSON-ready dicts sorted by ``changed_at``.

    Raises:
        ValueError: If an argument is out of range.
    """
    _validate(events=None, users=users, start=start, duration=duration)
    _, world = _simulation(seed=seed, users=users, start=start, duration=duration)
    return _change_rows(world)


class LandingSlice(NamedTuple):
    """The newline-delimited JSON of one time slice of a simulation (see `time_slices`)."""

    events: bytes
    event_count: int
    changes: bytes
    change_count: int


def time_slices(
    *,
    events: int,
    seed: int,
    users: int | None = None,
    slices: int,
    start: datetime = DEFAULT_START,
    duration: timedelta = timedelta(days=1),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[bytes, Iterator[LandingSlice]]:
    """All the user changes, and the events and changes of `slices` equal slices of the window.

    Slice ``i`` holds the events of the ``i``-th equal time slice of the window (so the
    slices' events concatenated equal `generate_events`) and the user changes dated in it; the
    first slice also holds the changes dated before `start` (every user's INSERT). The slices
    are rendered lazily, one at a time, in order.

    Returns:
        Every change as newline-delimited JSON, and the slices.

    Raises:
        ValueError: If an argument is out of range.
    """
    _validate(events=events, users=users, start=start, duration=duration)
    if slices < 1:
        raise ValueError(f"slices must be >= 1, got {slices}")
    rng, world = _simulation(
        seed=seed,
        users=_default_users(events) if users is None else users,
        start=start,
        duration=duration,
    )
    changes = _change_rows(world)
    planned = _plan_events(rng, world, events)
    window_ms = world.end_ms - world.start_ms
    slice_starts = [
        world.start_ms - (-window_ms * i // slices) for i in range(1, slices)
    ]  # ceil(window * i / slices)
    edges = [0, *(bisect_left(planned, ms, key=itemgetter(0)) for ms in slice_starts), len(planned)]
    changed_ms = sorted(profile.changed_ms for user in world.users for profile in user.history)
    change_edges = [0, *(bisect_left(changed_ms, ms) for ms in slice_starts), len(changes)]

    def render() -> Iterator[LandingSlice]:
        stream = _render_stream(rng, planned, progress)
        for (first, stop), (change_first, change_stop) in zip(
            pairwise(edges), pairwise(change_edges), strict=True
        ):
            yield LandingSlice(
                events=_ndjson(islice(stream, stop - first)),
                event_count=stop - first,
                changes=_ndjson(changes[change_first:change_stop]),
                change_count=change_stop - change_first,
            )
        if progress is not None:
            progress(events, events)

    return _ndjson(changes), render()


def events_name(seed: int, index: int) -> str:
    """The landing path of event file `index` of a batch produce of `seed`."""
    return f"events/events-s{seed}-{index:05d}.json"


def user_changes_name(seed: int) -> str:
    """The landing path of the CDC file of a batch produce of `seed`."""
    return f"user_changes/user-changes-s{seed}-00000.json"


def landing_contents(
    *,
    events: int,
    seed: int,
    users: int | None = None,
    files: int = 4,
    start: datetime = DEFAULT_START,
    duration: timedelta = timedelta(days=1),
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[str, bytes, int]]:
    """The files `write_landing` writes: (path relative to the landing, bytes, lines).

    The CDC file comes first, then the event files in chronological order, each rendered when
    it is asked for. The same arguments give the same names and bytes wherever they go.

    Raises:
        ValueError: If an argument is out of range.
    """
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    changes, parts = time_slices(
        events=events,
        seed=seed,
        users=users,
        slices=files,
        start=start,
        duration=duration,
        progress=progress,
    )
    yield user_changes_name(seed), changes, changes.count(b"\n")
    for index, part in enumerate(parts):
        yield events_name(seed, index), part.events, part.event_count


def write_landing(
    out: Path,
    *,
    events: int,
    seed: int,
    users: int | None = None,
    files: int = 4,
    start: datetime = DEFAULT_START,
    duration: timedelta = timedelta(days=1),
    progress: Callable[[int, int], None] | None = None,
) -> LandingSummary:
    """Write events and the matching CDC feed as newline-delimited JSON.

    Writes ``out/events/events-s{seed}-{i:05d}.json`` for ``i`` in ``range(files)``,
    where file ``i`` holds the events of the ``i``-th equal time slice of the
    window (so concatenated they equal `generate_events`), and
    ``out/user_changes/user-changes-s{seed}-00000.json``. The CDC file is written
    first. Each file is written under a hidden temporary name and renamed into
    place, so a streaming reader never sees it half written; a file with no
    events is empty.

    Args:
        out: Landing directory; created if missing.
        events: Number of events, >= 0.
        seed: Any int; also part of the file names.
        users: Size of the user population, >= 1; default ``max(10, events // 50)``.
        files: Number of event files, >= 1.
        start: Timezone-aware start of the event window.
        duration: Length of the event window, > 0 (at least 1 ms).
        progress: Called as ``progress(done, total)`` every 50,000 events and once at the end.

    Returns:
        Counts and paths of what was written.

    Raises:
        ValueError: If an argument is out of range.
        InputError: If a target file already exists (a ValueError too).
    """
    _validate(events=events, users=users, start=start, duration=duration)
    if files < 1:
        raise ValueError(f"files must be >= 1, got {files}")
    names = (user_changes_name(seed), *(events_name(seed, i) for i in range(files)))
    for name in (*names[1:], names[0]):
        if (out / name).exists():
            raise InputError(
                f"refusing to overwrite {out / name}: a streaming file source ignores a file "
                "name it has already seen; choose another --out or --seed"
            )
    lines: dict[str, int] = {}
    for name, data, count in landing_contents(
        events=events,
        seed=seed,
        users=users,
        files=files,
        start=start,
        duration=duration,
        progress=progress,
    ):
        write_atomically(out / name, data)
        lines[name] = count
    return LandingSummary(
        events=events,
        event_files=tuple(out / name for name in names[1:]),
        user_changes=lines[names[0]],
        change_files=(out / names[0],),
    )


def _ndjson(records: Iterable[Mapping[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE) for record in records)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` under a hidden temporary name, then rename it into place, so a streaming
    file source never sees it half written (file sources skip names starting with '.')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)
