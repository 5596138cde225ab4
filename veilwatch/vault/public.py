"""The public half of a vault (`vault.json`): who holds shares, K of N, and one public key per day.

Nothing in it is secret: the recorder needs it to seal, the server to check approvals, and anyone to
compare its digest with the one each key holder's share bundle records (a swapped vault file, one
whose keys someone else holds, would show a different digest).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from veilwatch.errors import VaultError
from veilwatch.vault._encoding import Fields, b64e, canonical
from veilwatch.vault.sealing import KEY_SIZE, EpochPublicKey, check_epoch, epoch_of

__all__ = ["HOLDER_NAME", "MAX_HOLDERS", "HolderPublic", "VaultPublic"]

VAULT_FORMAT = "veilwatch-vault"
VAULT_VERSION = 1
HOLDER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # also a file name: <name>.share
MAX_HOLDERS = 255
SIGNATURE_KEY_SIZE = 32  # Ed25519 public key


@dataclass(frozen=True)
class HolderPublic:
    """A key holder as everyone may know them: name, Shamir x and signature-checking key."""

    name: str
    x: int  # 1..N, never 0 (the share at x = 0 would be the secret itself)
    signing_public: bytes  # raw Ed25519 public key

    def __post_init__(self) -> None:
        if not HOLDER_NAME.fullmatch(self.name):
            raise ValueError(f"invalid holder name {self.name[:70]!r}: use 1 to 64 of a-z 0-9 _ . - (not first)")
        if not 1 <= self.x <= MAX_HOLDERS:
            raise ValueError(f"holder x must be 1..{MAX_HOLDERS}, not {self.x}")
        if len(self.signing_public) != SIGNATURE_KEY_SIZE:
            raise ValueError("an Ed25519 public key has 32 bytes")


@dataclass(frozen=True)
class VaultPublic:
    """Everything public about a vault; no private key survives set-up."""

    vault_id: str  # 32 hex digits, random
    k: int
    holders: tuple[HolderPublic, ...]  # ordered by x = 1..N
    epochs: tuple[EpochPublicKey, ...]  # consecutive days, oldest first

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{32}", self.vault_id):
            raise ValueError("a vault id is 32 lowercase hex digits")
        if [h.x for h in self.holders] != list(range(1, len(self.holders) + 1)):
            raise ValueError("holders must have x = 1..N in order")
        if len({h.name for h in self.holders}) != len(self.holders):
            raise ValueError("holder names must differ")
        if not 2 <= self.k <= len(self.holders):
            raise ValueError(f"K must be 2..N (N = {len(self.holders)}), not {self.k}")
        days = [e.epoch for e in self.epochs]
        if not days or days != sorted(set(days)):
            raise ValueError("a vault has at least one day key, in order, and no day twice")

    @property
    def n(self) -> int:
        """How many key holders there are."""
        return len(self.holders)

    @property
    def first_day(self) -> str:
        """The first epoch with a key."""
        return self.epochs[0].epoch

    @property
    def last_day(self) -> str:
        """The last epoch with a key: set-up must be re-run before it ends."""
        return self.epochs[-1].epoch

    @cached_property
    def _by_epoch(self) -> dict[str, EpochPublicKey]:
        return {e.epoch: e for e in self.epochs}

    @cached_property
    def _by_name(self) -> dict[str, HolderPublic]:
        return {h.name: h for h in self.holders}

    def epoch_key(self, day: date | str) -> EpochPublicKey:
        """The public key to seal a day's data to; VaultError when the vault has no key for it."""
        epoch = day if isinstance(day, str) else epoch_of(day)
        key = self._by_epoch.get(epoch)
        if key is None:
            raise VaultError(
                f"the vault has no key for {epoch[:40]} (it covers {self.first_day} to {self.last_day}; "
                "run `veilwatch vault init` again before its last day)"
            )
        return key

    def holder(self, name: str) -> HolderPublic | None:
        """The holder of this name, if any."""
        return self._by_name.get(name)

    def to_json(self) -> bytes:
        """The canonical `vault.json` bytes."""
        return canonical(
            {
                "format": VAULT_FORMAT,
                "version": VAULT_VERSION,
                "vault_id": self.vault_id,
                "k": self.k,
                "holders": [{"name": h.name, "x": h.x, "signing_public": b64e(h.signing_public)} for h in self.holders],
                "epochs": {e.epoch: b64e(e.public) for e in self.epochs},
            }
        )

    def digest(self) -> bytes:
        """SHA-256 of the canonical file: the vault's fingerprint, recorded in every share bundle."""
        return hashlib.sha256(self.to_json()).digest()

    @classmethod
    def from_json(cls, data: bytes) -> VaultPublic:
        """Read `vault.json`; VaultFileError if malformed."""
        fields = Fields.parse(data, "vault file", form=VAULT_FORMAT, versions=frozenset({VAULT_VERSION}))
        fields.only("vault_id", "k", "holders", "epochs")
        try:
            holders = tuple(
                _holder(fields.item(item, f"holder {i + 1}")) for i, item in enumerate(fields.array("holders"))
            )
            epochs = tuple(_epoch(fields, day, text) for day, text in sorted(fields.mapping("epochs").items()))
            return cls(fields.text("vault_id"), fields.integer("k"), holders, epochs)
        except ValueError as exc:
            if isinstance(exc, VaultError):
                raise
            fields.fail(str(exc))


def _holder(fields: Fields) -> HolderPublic:
    fields.only("name", "x", "signing_public")
    return HolderPublic(
        fields.text("name"), fields.integer("x"), fields.blob("signing_public", size=SIGNATURE_KEY_SIZE)
    )


def _epoch(fields: Fields, day: str, text: object) -> EpochPublicKey:
    if not isinstance(text, str):
        fields.fail(f"the key of {day[:12]} must be base64 text")
    return EpochPublicKey(check_epoch(day), fields.decode_b64(text, f"the key of {day[:12]}", size=KEY_SIZE))
