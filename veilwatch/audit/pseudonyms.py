"""Visitors' names never enter the public log: a keyed pseudonym stands in for each.

The log is public, so that anyone can check it; staff are named in it (the watched may know their
watchers), but visitors are members of the public and keep their names to themselves. Each
visitor's name becomes `visitor-` and 16 hex digits of HMAC-SHA256 under a secret key kept beside
the log key: stable (one visitor's actions can be followed through the log), not reversible without
the key, and checkable by whoever holds it (an auditor answering "what did this visitor do?").

A name typed into a failed login is anyone's guess, so it gets a pseudonym of another domain
(`attempt-`, under a key derived from the same secret): repeated guesses at one name can still be
followed, but a guess never yields the pseudonym that name's visitor carries in their own entries,
and staff names typed there are not shown either (no telling which names exist).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from veilwatch.access import STAFF
from veilwatch.audit.files import write_private
from veilwatch.errors import AuditError

__all__ = ["KEY_FILE", "PUBLIC_ROLES", "Pseudonyms"]

KEY_FILE = "pseudonyms.key"
PUBLIC_ROLES = frozenset({*STAFF, "system"})  # named in the log as themselves


class Pseudonyms:
    """Names as the public log shows them."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise AuditError("the pseudonym key must have at least 32 bytes")
        self._key = key
        self._attempt_key = hmac.new(key, b"veilwatch failed-login names", hashlib.sha256).digest()

    @classmethod
    def open(cls, key_dir: Path) -> Pseudonyms:
        """The key in `key_dir`, made (mode 0600) on first use."""
        path = key_dir / KEY_FILE
        if not path.exists():
            write_private(path, secrets.token_hex(32).encode() + b"\n", replace=False)
        try:
            text = path.read_text(encoding="ascii").strip()
            return cls(bytes.fromhex(text))
        except (OSError, ValueError) as exc:
            raise AuditError(f"cannot read the pseudonym key: {exc}", path=str(path)) from exc

    def of(self, name: str) -> str:
        """The pseudonym of a visitor's name (names are case-insensitive, as logins are)."""
        digest = hmac.new(self._key, name.casefold().encode("utf-8"), hashlib.sha256).hexdigest()
        return f"visitor-{digest[:16]}"

    def attempted(self, name: str) -> str:
        """The pseudonym of a name typed into a failed login: unlinkable to `of(name)` without the key."""
        digest = hmac.new(self._attempt_key, name.casefold().encode("utf-8"), hashlib.sha256).hexdigest()
        return f"attempt-{digest[:16]}"

    def public(self, name: str, role: str) -> str:
        """How a user appears in the log: staff by name, anyone else by pseudonym."""
        return name if role in PUBLIC_ROLES else self.of(name)
