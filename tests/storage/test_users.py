"""Users: argon2id hashes, name and password rules, epochs that revoke sessions."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from tests.storage.builders import Clock
from veilwatch.errors import UnknownUserError, UserError
from veilwatch.storage import Database, Role, SessionStore, User, UserStore
from veilwatch.storage.models import UserRow

PASSWORD = "correct horse battery"


@pytest.fixture
def users(db: Database) -> UserStore:
    """A user store with argon2's default parameters."""
    return UserStore(db)


def _stored_hash(db: Database, name: str) -> str:
    return db.read(lambda s: s.scalars(select(UserRow.password_hash).where(UserRow.name == name)).one())


def test_add_then_verify(users: UserStore, db: Database) -> None:
    added = users.add("alice", PASSWORD, Role.OPERATOR)
    assert added == User(id=added.id, name="alice", role=Role.OPERATOR, epoch=0)
    assert users.verify("alice", PASSWORD) == added
    assert users.count() == 1
    stored = _stored_hash(db, "alice")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert "hash" not in repr(added)


def test_wrong_password_and_unknown_user_are_refused_alike(users: UserStore) -> None:
    users.add("alice", PASSWORD, Role.VISITOR)
    assert users.verify("alice", PASSWORD + "!") is None
    assert users.verify("alice", "") is None
    assert users.verify("mallory", PASSWORD) is None
    assert users.verify("not a valid name", PASSWORD) is None
    assert users.verify("alice", "x" * 5000) is None


def test_an_unknown_name_costs_a_hash_too(users: UserStore) -> None:
    users.add("alice", PASSWORD, Role.VISITOR)

    def timed(name: str) -> float:
        start = time.perf_counter()
        users.verify(name, PASSWORD + "!")
        return time.perf_counter() - start

    known, unknown = min(timed("alice") for _ in range(2)), min(timed("mallory") for _ in range(2))
    assert unknown > known / 3  # both pay for one argon2 verification


def test_duplicate_names_are_refused_in_any_letter_case(users: UserStore) -> None:
    users.add("alice", PASSWORD, Role.VISITOR)
    for name in ("alice", "ALICE"):
        with pytest.raises(UserError, match="already exists"):
            users.add(name, PASSWORD, Role.ADMIN)
    assert users.count() == 1


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("alice", "short", "too short"),
        ("alice", "123456789", "too short"),
        ("alice", "x" * 1025, "too long"),
        ("", PASSWORD, "invalid user name"),
        ("a" * 65, PASSWORD, "invalid user name"),
        ("al ice", PASSWORD, "invalid user name"),
        ("alice/../root", PASSWORD, "invalid user name"),
        ("ålice", PASSWORD, "invalid user name"),
    ],
)
def test_invalid_names_and_weak_passwords_are_refused(db: Database, name: str, password: str, message: str) -> None:
    users = UserStore(db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    with pytest.raises(UserError, match=message) as caught:
        users.add(name, password, Role.VISITOR)
    assert isinstance(caught.value, ValueError) and caught.value.exit_code == 2
    assert users.count() == 0


def test_get_by_name_list_and_remove(db: Database, cheap_hasher: PasswordHasher) -> None:
    users = UserStore(db, hasher=cheap_hasher)
    bob = users.add("bob", PASSWORD, Role.AUDITOR)
    alice = users.add("alice", PASSWORD, Role.ADMIN)
    assert users.get(bob.id) == bob and users.get(9999) is None
    assert users.by_name("BOB") == bob and users.by_name("nobody") is None
    assert users.list() == [alice, bob]
    users.remove("bob")
    assert users.list() == [alice]
    assert users.verify("bob", PASSWORD) is None
    with pytest.raises(UnknownUserError):
        users.remove("bob")


def test_set_password_and_set_role_end_every_session_at_once(
    db: Database, cheap_hasher: PasswordHasher, clock: Clock
) -> None:
    users = UserStore(db, hasher=cheap_hasher)
    sessions = SessionStore(db, clock=clock)
    alice = users.add("alice", PASSWORD, Role.OPERATOR)
    first, second = sessions.create(alice), sessions.create(alice)
    assert sessions.lookup(first.token) is not None

    changed = users.set_password("alice", "a new long password")
    assert changed.epoch == 1
    assert sessions.lookup(first.token) is None and sessions.lookup(second.token) is None
    assert users.verify("alice", PASSWORD) is None
    assert users.verify("alice", "a new long password") == changed

    third = sessions.create(changed)
    stale = sessions.create(alice)  # made from an outdated User: void from birth
    demoted = users.set_role("alice", Role.VISITOR)
    assert demoted.role is Role.VISITOR and demoted.epoch == 2
    assert sessions.lookup(third.token) is None and sessions.lookup(stale.token) is None
    with pytest.raises(UserError, match="too short"):
        users.set_password("alice", "short")
    with pytest.raises(UnknownUserError):
        users.set_role("nobody", Role.ADMIN)


def test_removing_a_user_ends_their_sessions(db: Database, cheap_hasher: PasswordHasher) -> None:
    users = UserStore(db, hasher=cheap_hasher)
    sessions = SessionStore(db)
    issued = sessions.create(users.add("alice", PASSWORD, Role.OPERATOR))
    users.remove("alice")
    assert sessions.lookup(issued.token) is None
    assert sessions.purge() == 0  # the foreign key already deleted the row


def test_a_hash_with_old_parameters_is_upgraded_on_login(db: Database, cheap_hasher: PasswordHasher) -> None:
    UserStore(db, hasher=cheap_hasher).add("alice", PASSWORD, Role.VISITOR)
    weak = _stored_hash(db, "alice")
    users = UserStore(db)  # the defaults: stronger than the cheap hasher's
    alice = users.verify("alice", PASSWORD)
    assert alice is not None and alice.epoch == 0  # not a credential change: sessions survive
    strong = _stored_hash(db, "alice")
    assert strong != weak and not PasswordHasher().check_needs_rehash(strong)
    assert users.verify("alice", PASSWORD) == alice
