"""The threat keyed hashes answer: a plain SHA-256 of an e-mail address is reversed by a
dictionary built from public ingredients; an HMAC under a secret key is not.

The data are the project's own generated landing files. The attacker knows name lists (here:
the first and last names of the people in the data), the e-mail domains in use and the site's
address scheme (`first.last<n>@domain`, and `firstlast<n>.<k>@domain` after an address change),
but not the PII key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from pipeline import config
from pipeline.config import PiiKey, exposed_key_file
from pipeline.errors import ConfigurationError
from pipeline.transforms.pseudonymize import keyed_hash
from scenarios.generator import _slug, write_landing

MAX_ADDRESS_CHANGES = 1
"""Address changes per user the dictionary covers: about 0.3 updates per user, a quarter of
them new addresses, so a second change is rare (and each one triples the dictionary)."""


@dataclass(frozen=True)
class _People:
    emails: frozenset[str]
    full_names: frozenset[str]
    users: int


@dataclass(frozen=True)
class _Attack:
    dictionary_size: int
    true_emails: frozenset[str]
    reversed_plain: frozenset[str]
    reversed_keyed: frozenset[str]


def _people(landing: Path) -> _People:
    rows = [
        orjson.loads(line)
        for path in sorted((landing / "user_changes").glob("*.json"))
        for line in path.read_bytes().splitlines()
    ]
    return _People(
        emails=frozenset(r["email"] for r in rows),
        full_names=frozenset(r["full_name"] for r in rows),
        users=len({r["user_id"] for r in rows}),
    )


def _name_lists(full_names: frozenset[str]) -> tuple[set[str], set[str]]:
    """First and last names, normalised as the shop does; a name of several words may be
    split anywhere ("Ana de la Cruz": "ana" + "delacruz", "anade" + "lacruz", ...)."""
    firsts: set[str] = set()
    lasts: set[str] = set()
    for full_name in full_names:
        words = full_name.split()
        for cut in range(1, len(words)):
            firsts.add(_slug(" ".join(words[:cut])))
            lasts.add(_slug(" ".join(words[cut:])))
    return firsts, lasts


def _dictionary(people: _People, domains: set[str]) -> tuple[list[bytes], list[bytes]]:
    """The attacker's dictionary as local parts and `@domain` ends: every pair is a candidate."""
    firsts, lasts = _name_lists(people.full_names)
    numbers = range(1, people.users + 11)
    changes = range(1, MAX_ADDRESS_CHANGES + 1)
    locals_ = [f"{f}.{last}{n}" for f in firsts for last in lasts for n in numbers]
    locals_ += [
        f"{f}{last}{n}.{k}" for f in firsts for last in lasts for n in numbers for k in changes
    ]
    return [local.encode() for local in locals_], [f"@{d}".encode() for d in sorted(domains)]


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> _Attack:
    """One pass of the dictionary over both kinds of pseudonyms of the true addresses."""
    landing = tmp_path_factory.mktemp("threat") / "landing"
    write_landing(landing, events=2000, seed=3)
    people = _people(landing)
    domains = {email.rpartition("@")[2] for email in people.emails}
    key = PiiKey(os.urandom(32))
    # What a leaked table shows: the pseudonyms, without the addresses.
    plain = {hashlib.sha256(e.encode()).digest(): e for e in people.emails}
    keyed = {bytes.fromhex(keyed_hash(key, e)): e for e in people.emails}
    assert len(plain) == len(keyed) == len(people.emails)

    locals_, ats = _dictionary(people, domains)
    sha256 = hashlib.sha256
    pseudonyms = plain.keys() | keyed.keys()
    found = [c for local in locals_ for at in ats if sha256(c := local + at).digest() in pseudonyms]
    reversed_plain = {c.decode() for c in found if sha256(c).digest() in plain}
    reversed_keyed = {c.decode() for c in found if sha256(c).digest() in keyed}
    return _Attack(
        len(locals_) * len(ats), people.emails, frozenset(reversed_plain), frozenset(reversed_keyed)
    )


def test_the_attack_is_a_real_dictionary_over_enough_people(attack: _Attack) -> None:
    assert len(attack.true_emails) >= 40, "the landing holds too few people to attack"
    # guesses, not a list of the answers: over a thousand candidates per true address
    assert 1_000 * len(attack.true_emails) < attack.dictionary_size < 5_000_000, (
        attack.dictionary_size
    )


def test_unkeyed_sha256_of_every_email_is_reversed_by_the_dictionary(attack: _Attack) -> None:
    assert attack.reversed_plain == attack.true_emails, (
        f"a dictionary of {attack.dictionary_size:,} candidates reversed "
        f"{len(attack.reversed_plain)} of {len(attack.true_emails)} unkeyed hashes; missed: "
        f"{sorted(attack.true_emails - attack.reversed_plain)}"
    )


def test_keyed_hashes_of_the_same_emails_are_not_reversed(attack: _Attack) -> None:
    assert attack.reversed_keyed == frozenset(), (
        f"a dictionary of {attack.dictionary_size:,} candidates reversed keyed hashes: "
        f"{sorted(attack.reversed_keyed)}"
    )


def test_a_short_key_is_refused_naming_the_minimum_length() -> None:
    with pytest.raises(ConfigurationError, match=r"at least 16\b"):
        PiiKey(b"short")
    PiiKey(b"x" * 16)  # the minimum itself is accepted


def test_a_key_file_readable_by_others_is_reported_with_the_fix(tmp_path: Path) -> None:
    key_file = tmp_path / "pii.key"
    key_file.write_text("k" * 64, encoding="utf-8")

    key_file.chmod(0o644)
    warning = exposed_key_file(key_file)
    assert warning is not None
    assert f"chmod 600 {key_file}" in warning
    assert "644" in warning
    assert "k" * 64 not in warning

    key_file.chmod(0o600)
    assert exposed_key_file(key_file) is None


def test_the_key_file_named_by_the_environment_is_checked_unless_the_key_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "pii.key"
    key_file.write_text("k" * 64, encoding="utf-8")
    key_file.chmod(0o640)
    monkeypatch.delenv(config.PII_KEY_ENV, raising=False)
    monkeypatch.setenv(config.PII_KEY_FILE_ENV, str(key_file))

    warning = exposed_key_file()
    assert warning is not None and "chmod 600" in warning

    monkeypatch.setenv(config.PII_KEY_ENV, "k" * 64)  # the key itself wins: the file is unused
    assert exposed_key_file() is None
