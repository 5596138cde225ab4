"""Vault set-up and key holders' share bundles.

`create_vault` makes one X25519 key pair per UTC day, splits each private key K-of-N with Shamir's
scheme (pycryptodome, over GF(2^128), which shares 16-byte secrets: a 32-byte key is split as two
halves, each with the same x), gives holder i (x = i, never 0) a share bundle, and keeps no private
key: what it returns is the public vault and the N encrypted bundles. Keys cover `days` days from
`first_day`; re-run set-up (a new vault) before the last one, typically yearly.

Share bundle (JSON, version 1): a plaintext header (vault id and digest, holder name, x, K, N, the
holder's Ed25519 public key, the days covered, the Argon2id parameters and salt, the AES-GCM nonce)
and `ciphertext`: AES-256-GCM, under Argon2id(passphrase, salt), of the holder's Ed25519 signing key
(32 bytes) followed by one 32-byte share per day, oldest first. The canonical header is the
associated data, so editing any of it (a name, x, the days) makes the bundle not open.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import TracebackType
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veilwatch.errors import VaultError, WrongPassphraseError
from veilwatch.vault._encoding import Fields, b64e, canonical
from veilwatch.vault.public import HOLDER_NAME, MAX_HOLDERS, HolderPublic, VaultPublic
from veilwatch.vault.sealing import KEY_SIZE, NONCE_SIZE, EpochPublicKey, check_epoch, epoch_of

__all__ = [
    "DEFAULT_KDF",
    "MAX_DAYS",
    "MIN_PASSPHRASE_LENGTH",
    "BundleInfo",
    "HolderSpec",
    "KdfParams",
    "UnlockedBundle",
    "create_vault",
    "read_bundle_info",
    "unlock_bundle",
]

BUNDLE_FORMAT = "veilwatch-share-bundle"
BUNDLE_VERSION = 1
MIN_PASSPHRASE_LENGTH = 10
MAX_DAYS = 1100  # three years: keys far ahead only widen what one set of shares unlocks
HALF = 16  # pycryptodome's Shamir shares 16-byte secrets
SALT_SIZE = 16


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost of turning a passphrase into a bundle key (RFC 9106's second recommended profile)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4

    def __post_init__(self) -> None:
        # Bounds keep a hostile bundle from making `approve` spin or allocate without limit.
        if not 1 <= self.time_cost <= 64:
            raise ValueError(f"argon2 time_cost must be 1..64, not {self.time_cost}")
        if not 1 <= self.parallelism <= 64:
            raise ValueError(f"argon2 parallelism must be 1..64, not {self.parallelism}")
        if not 8 * self.parallelism <= self.memory_kib <= 4 * 1024 * 1024:
            raise ValueError(f"argon2 memory must be {8 * self.parallelism} KiB..4 GiB, not {self.memory_kib} KiB")

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        """The 32-byte bundle key for a passphrase."""
        # NFC: the same passphrase typed on two systems may arrive in two Unicode forms.
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        return hash_secret_raw(secret, salt, self.time_cost, self.memory_kib, self.parallelism, KEY_SIZE, Type.ID)


DEFAULT_KDF = KdfParams()


@dataclass(frozen=True)
class HolderSpec:
    """A key holder to be at set-up: a name (also their file name) and their passphrase."""

    name: str
    passphrase: str = field(repr=False)


@dataclass(frozen=True)
class BundleInfo:
    """The plaintext header of a share bundle: who, which vault, which days; no secrets."""

    vault_id: str
    vault_digest: bytes  # SHA-256 of the vault.json this bundle was made with
    holder: str
    x: int
    k: int
    n: int
    signing_public: bytes
    first_day: str
    days: int
    kdf: KdfParams
    salt: bytes
    nonce: bytes

    @property
    def last_day(self) -> str:
        """The last day covered."""
        return epoch_of(date.fromisoformat(self.first_day) + timedelta(days=self.days - 1))

    def day_index(self, epoch: str) -> int | None:
        """Position of a day's share in the bundle, or None when it is not covered."""
        index = (date.fromisoformat(epoch) - date.fromisoformat(self.first_day)).days
        return index if 0 <= index < self.days else None

    def header(self) -> dict[str, Any]:
        """The header as written (and authenticated) in the file."""
        return {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "vault_id": self.vault_id,
            "vault_digest": self.vault_digest.hex(),
            "holder": self.holder,
            "x": self.x,
            "k": self.k,
            "n": self.n,
            "signing_public": b64e(self.signing_public),
            "first_day": self.first_day,
            "days": self.days,
            "kdf": {
                "name": "argon2id",
                "time_cost": self.kdf.time_cost,
                "memory_kib": self.kdf.memory_kib,
                "parallelism": self.kdf.parallelism,
                "salt": b64e(self.salt),
            },
            "cipher": {"name": "aes-256-gcm", "nonce": b64e(self.nonce)},
        }


class UnlockedBundle:
    """A decrypted bundle: the holder's signing key and shares, in memory until `wipe()`.

    Python cannot promise erasure: `wipe()` overwrites the bytearray this object owns, but the
    immutable `bytes` that AES-GCM returned are only freed (not cleared) when collected, and the
    signing key object holds its own copy inside OpenSSL (cleared by OpenSSL when freed).
    """

    def __init__(self, info: BundleInfo, secret: bytearray) -> None:
        self.info = info
        self._secret = secret

    def signing_key(self) -> Ed25519PrivateKey:
        """The holder's Ed25519 key (signs approvals)."""
        self._check()
        return Ed25519PrivateKey.from_private_bytes(bytes(self._secret[:KEY_SIZE]))

    def share(self, epoch: str) -> bytes:
        """This holder's 32-byte share of a day's private key (two 16-byte Shamir shares)."""
        self._check()
        index = self.info.day_index(check_epoch(epoch))
        if index is None:
            raise VaultError(
                f"{self.info.holder}'s share covers {self.info.first_day} to {self.info.last_day}, not {epoch}"
            )
        start = KEY_SIZE * (1 + index)
        return bytes(self._secret[start : start + KEY_SIZE])

    def wipe(self) -> None:
        """Overwrite the decrypted bytes this object holds (best effort; see the class docstring)."""
        self._secret[:] = bytes(len(self._secret))
        self._secret.clear()

    def _check(self) -> None:
        if not self._secret:
            raise VaultError("this share bundle was wiped")

    def __enter__(self) -> UnlockedBundle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.wipe()


def create_vault(
    holders: Sequence[HolderSpec], k: int, first_day: date, days: int = 366, *, kdf: KdfParams = DEFAULT_KDF
) -> tuple[VaultPublic, list[bytes]]:
    """Make a K-of-N vault: the public vault and one encrypted share bundle per holder (x = 1..N, in order)."""
    _check_setup(holders, k, days)
    n = len(holders)
    signing = [Ed25519PrivateKey.generate() for _ in holders]
    # One bytearray per holder: signing key, then a share per day. Overwritten once encrypted.
    secrets_by_x = [bytearray(key.private_bytes_raw()) for key in signing]
    epochs = []
    for offset in range(days):
        day_key = X25519PrivateKey.generate()
        epochs.append(
            EpochPublicKey(epoch_of(first_day + timedelta(days=offset)), day_key.public_key().public_bytes_raw())
        )
        raw = bytearray(day_key.private_bytes_raw())
        low = Shamir.split(k, n, bytes(raw[:HALF]))
        high = Shamir.split(k, n, bytes(raw[HALF:]))
        raw[:] = bytes(len(raw))
        for (x, low_share), (x_high, high_share) in zip(low, high, strict=True):
            if x != x_high:  # pycryptodome numbers both halves' shares 1..n; a change there must not go unseen
                raise VaultError("secret sharing returned shares out of order")
            secrets_by_x[x - 1] += low_share + high_share
        del day_key  # the private key now exists only as shares
    vault = VaultPublic(
        vault_id=secrets.token_hex(16),
        k=k,
        holders=tuple(
            HolderPublic(spec.name, x, key.public_key().public_bytes_raw())
            for x, (spec, key) in enumerate(zip(holders, signing, strict=True), start=1)
        ),
        epochs=tuple(epochs),
    )
    try:
        return vault, [
            _seal_bundle(vault, vault.holders[i], spec.passphrase, secrets_by_x[i], kdf)
            for i, spec in enumerate(holders)
        ]
    finally:
        for secret in secrets_by_x:
            secret[:] = bytes(len(secret))


def _check_setup(holders: Sequence[HolderSpec], k: int, days: int) -> None:
    names = [h.name for h in holders]
    for name in names:
        if not HOLDER_NAME.fullmatch(name):
            raise VaultError(f"invalid holder name {name[:70]!r}: use 1 to 64 of a-z 0-9 _ . - (starting a-z or 0-9)")
    if len(set(names)) != len(names):
        raise VaultError("holder names must differ")
    if not 2 <= len(holders) <= MAX_HOLDERS:
        raise VaultError(f"a vault needs 2 to {MAX_HOLDERS} key holders, not {len(holders)}")
    # K = 1 would let any one holder unmask alone: the opposite of what the vault is for.
    if not 2 <= k <= len(holders):
        raise VaultError(f"K must be 2..N (N = {len(holders)}), not {k}")
    if not 1 <= days <= MAX_DAYS:
        raise VaultError(f"days must be 1..{MAX_DAYS}, not {days}")
    for holder in holders:
        if len(holder.passphrase) < MIN_PASSPHRASE_LENGTH:
            raise VaultError(
                f"passphrase for {holder.name} is too short: use at least {MIN_PASSPHRASE_LENGTH} characters"
            )


def _seal_bundle(vault: VaultPublic, holder: HolderPublic, passphrase: str, secret: bytearray, kdf: KdfParams) -> bytes:
    info = BundleInfo(
        vault_id=vault.vault_id,
        vault_digest=vault.digest(),
        holder=holder.name,
        x=holder.x,
        k=vault.k,
        n=vault.n,
        signing_public=holder.signing_public,
        first_day=vault.first_day,
        days=len(vault.epochs),
        kdf=kdf,
        salt=os.urandom(SALT_SIZE),
        nonce=os.urandom(NONCE_SIZE),
    )
    header = info.header()
    ciphertext = AESGCM(kdf.derive(passphrase, info.salt)).encrypt(info.nonce, bytes(secret), canonical(header))
    return canonical({**header, "ciphertext": b64e(ciphertext)}) + b"\n"


def read_bundle_info(bundle: bytes) -> BundleInfo:
    """The public header of a share bundle; VaultFileError if it is not one."""
    return _parse_bundle(bundle)[0]


def unlock_bundle(bundle: bytes, passphrase: str) -> UnlockedBundle:
    """Decrypt a share bundle; WrongPassphraseError if the passphrase (or the file) is wrong."""
    info, ciphertext = _parse_bundle(bundle)
    try:
        plain = AESGCM(info.kdf.derive(passphrase, info.salt)).decrypt(info.nonce, ciphertext, canonical(info.header()))
    except InvalidTag:
        raise WrongPassphraseError(f"wrong passphrase for {info.holder} (or the share file was altered)") from None
    if len(plain) != KEY_SIZE * (1 + info.days):
        raise VaultError(
            f"the share bundle of {info.holder} holds {len(plain)} bytes, not a key and {info.days} shares"
        )
    return UnlockedBundle(info, bytearray(plain))


def _parse_bundle(bundle: bytes) -> tuple[BundleInfo, bytes]:
    fields = Fields.parse(bundle, "share bundle", form=BUNDLE_FORMAT, versions=frozenset({BUNDLE_VERSION}))
    fields.only(
        "vault_id",
        "vault_digest",
        "holder",
        "x",
        "k",
        "n",
        "signing_public",
        "first_day",
        "days",
        "kdf",
        "cipher",
        "ciphertext",
    )
    kdf = fields.nested("kdf")
    kdf.only("name", "time_cost", "memory_kib", "parallelism", "salt")
    cipher = fields.nested("cipher")
    cipher.only("name", "nonce")
    if kdf.text("name") != "argon2id" or cipher.text("name") != "aes-256-gcm":
        fields.fail("only argon2id and aes-256-gcm are supported")
    try:
        info = BundleInfo(
            vault_id=fields.text("vault_id"),
            vault_digest=_digest(fields),
            holder=fields.text("holder"),
            x=fields.integer("x", low=1, high=MAX_HOLDERS),
            k=fields.integer("k", low=2, high=MAX_HOLDERS),
            n=fields.integer("n", low=2, high=MAX_HOLDERS),
            signing_public=fields.blob("signing_public", size=KEY_SIZE),
            first_day=check_epoch(fields.text("first_day")),
            days=fields.integer("days", low=1, high=MAX_DAYS),
            kdf=KdfParams(kdf.integer("time_cost"), kdf.integer("memory_kib"), kdf.integer("parallelism")),
            salt=kdf.blob("salt", size=SALT_SIZE),
            nonce=cipher.blob("nonce", size=NONCE_SIZE),
        )
    except ValueError as exc:
        if isinstance(exc, VaultError):
            raise
        fields.fail(str(exc))
    return info, fields.blob("ciphertext")


def _digest(fields: Fields) -> bytes:
    text = fields.text("vault_digest")
    if len(text) != 64 or text.strip("0123456789abcdef"):
        fields.fail("vault_digest must be 64 lowercase hex digits")
    return bytes.fromhex(text)
