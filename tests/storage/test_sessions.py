"""Login sessions: hashed tokens, expiry, revocation, throttled last-seen."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from tests.storage.builders import Clock
from veilwatch.storage import Database, Role, SessionStore, User, UserStore
from veilwatch.storage.models import SessionRow
from veilwatch.storage.sessions import TOUCH_INTERVAL_S, token_digest


@pytest.fixture
def alice(db: Database, cheap_hasher: PasswordHasher) -> User:
    """An operator."""
    return UserStore(db, hasher=cheap_hasher).add("alice", "correct horse battery", Role.OPERATOR)


def test_a_session_is_found_by_its_token_until_it_expires(db: Database, alice: User, clock: Clock) -> None:
    sessions = SessionStore(db, lifetime_s=3600, clock=clock)
    issued = sessions.create(alice)
    assert issued.expires_at == clock.now + 3600
    assert issued.token != issued.csrf_token and len(issued.token) >= 43
    found = sessions.lookup(issued.token)
    assert found is not None and found.user == alice and found.csrf_token == issued.csrf_token
    clock.now += 3599
    assert sessions.lookup(issued.token) is not None
    clock.now += 1
    assert sessions.lookup(issued.token) is None
    assert sessions.purge() == 1


def test_unknown_and_malformed_tokens_find_nothing(db: Database, alice: User) -> None:
    sessions = SessionStore(db)
    sessions.create(alice)
    for token in ("", "nope", "x" * 10_000, "\x00"):
        assert sessions.lookup(token) is None


def test_only_a_hash_of_the_token_is_stored(db: Database, alice: User, data_dir: Path) -> None:
    issued = SessionStore(db).create(alice)
    stored = db.read(lambda s: s.scalars(select(SessionRow.token_hash)).one())
    assert stored == token_digest(issued.token) != issued.token
    files = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("veilwatch.db"))
    assert stored.encode() in files  # we are looking in the right place…
    assert issued.token.encode() not in files  # …and the token is not there
    assert issued.token not in repr(issued) and issued.csrf_token not in repr(issued)


def test_revoke_and_revoke_user(db: Database, alice: User) -> None:
    sessions = SessionStore(db)
    one, two, three = (sessions.create(alice) for _ in range(3))
    assert sessions.revoke(one.token) is True
    assert sessions.revoke(one.token) is False
    assert sessions.lookup(one.token) is None and sessions.lookup(two.token) is not None
    assert sessions.revoke_user(alice.id) == 2
    assert sessions.lookup(two.token) is None and sessions.lookup(three.token) is None


def test_last_seen_is_refreshed_at_most_once_a_minute(db: Database, alice: User, clock: Clock) -> None:
    sessions = SessionStore(db, clock=clock)
    issued = sessions.create(alice)
    start = clock.now
    clock.now += TOUCH_INTERVAL_S - 1
    found = sessions.lookup(issued.token)
    assert found is not None and found.last_seen_at == start
    clock.now += 1
    found = sessions.lookup(issued.token)
    assert found is not None and found.last_seen_at == clock.now
    assert db.read(lambda s: s.scalars(select(SessionRow.last_seen_at)).one()) == clock.now


def test_a_session_for_a_removed_user_cannot_be_created(
    db: Database, alice: User, cheap_hasher: PasswordHasher
) -> None:
    UserStore(db, hasher=cheap_hasher).remove("alice")
    with pytest.raises(LookupError):
        SessionStore(db).create(alice)


def test_lifetime_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError, match="positive"):
        SessionStore(db, lifetime_s=0)
