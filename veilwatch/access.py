"""Who may do what: the one `Role` enum and the one policy every check in veilwatch asks.

Storage keeps a user's role; the live view, the server and the CLI decide with these functions,
so that a rule (say, who may export) is written once and changed in one place.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

__all__ = [
    "STAFF",
    "Role",
    "is_staff",
    "may_administer",
    "may_export",
    "may_play_back",
    "may_take_over",
    "may_unmask",
    "may_view",
]


class Role(StrEnum):
    """A user's role. The policy below decides what each may do; storage only keeps it."""

    VISITOR = "visitor"  # watches veiled live video
    OPERATOR = "operator"  # also steers cameras and takes over from visitors
    AUDITOR = "auditor"  # reads the action log and recordings
    ADMIN = "admin"  # manages users; sees every camera


STAFF = frozenset({Role.OPERATOR, Role.AUDITOR, Role.ADMIN})  # named to everyone: the watched may know their watchers


def is_staff(role: str) -> bool:
    """Operators, auditors and admins are staff (named in the public log and to other watchers)."""
    return role in STAFF


def may_view(role: str, viewers: Collection[str]) -> bool:
    """Whether a role may watch a camera whose config lists `viewers` (admins watch every camera)."""
    return role == Role.ADMIN or role in viewers


def may_take_over(role: str) -> bool:
    """Whether a role may take the steering of a camera from whoever holds it."""
    return role in (Role.OPERATOR, Role.ADMIN)


def may_play_back(role: str) -> bool:
    """Whether a role may list and play recordings."""
    return is_staff(role)


def may_export(role: str) -> bool:
    """Whether a role may export a clip (and fetch exports)."""
    return is_staff(role)


def may_unmask(role: str) -> bool:
    """Whether a role may ask for an unmasking (what makes it happen is K key holders, not a role)."""
    return is_staff(role)


def may_administer(role: str) -> bool:
    """Whether a role may manage users."""
    return role == Role.ADMIN
