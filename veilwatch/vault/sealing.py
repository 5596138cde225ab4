"""Sealing: AES-256-GCM under a fresh data key, the data key wrapped to a day's X25519 public key.

Anyone with the public vault file can seal; only the day's private key opens, and that key exists
only while K key holders have approved an unmask (see `veilwatch.vault.unmask`).

Sealed blob, version 1 (all lengths fixed except the label):

    magic "VWSEAL" | version 0x01 | label length (1 byte) | label (the epoch id, ASCII)
    | ephemeral X25519 public key (32) | wrap nonce (12) | wrapped data key (32 + 16 tag)
    | payload nonce (12) | payload ciphertext + 16-byte tag

The wrapping key is HKDF-SHA256 of the X25519 shared secret, with a purpose string and both public
keys in the info (so a key derived for one recipient or purpose is never valid for another). The
wrapped key's associated data is the header so far plus the caller's `associated`; the payload's is
the whole header plus `associated`. So changing any byte, the epoch label, or the camera/segment/time
the caller binds in `associated` makes opening fail.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from datetime import date

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from veilwatch.errors import SealedDataError

__all__ = ["MAGIC", "EpochPublicKey", "check_epoch", "epoch_of", "open_sealed", "seal", "sealed_epoch"]

MAGIC = b"VWSEAL"
VERSION = 1
KEY_SIZE = 32  # AES-256 data keys and X25519 keys alike
NONCE_SIZE = 12
TAG_SIZE = 16
_EPOCH = re.compile(r"\d{4}-\d{2}-\d{2}")
PURPOSE_SEAL = b"seal"
PURPOSE_APPROVAL = b"approval"


def epoch_of(day: date) -> str:
    """The epoch id of a UTC day: "YYYY-MM-DD"."""
    return day.isoformat()


def check_epoch(epoch: str) -> str:
    """Return `epoch` if it is a real "YYYY-MM-DD" day, else raise ValueError."""
    if not _EPOCH.fullmatch(epoch):
        raise ValueError(f"epoch id {epoch[:40]!r} is not YYYY-MM-DD")
    date.fromisoformat(epoch)  # rejects 2026-02-30
    return epoch


@dataclass(frozen=True)
class EpochPublicKey:
    """The public key of one UTC day: what the recorder seals that day's data keys to."""

    epoch: str  # "YYYY-MM-DD"
    public: bytes  # raw X25519 public key, 32 bytes

    def __post_init__(self) -> None:
        check_epoch(self.epoch)
        if len(self.public) != KEY_SIZE:
            raise ValueError(f"an X25519 public key has {KEY_SIZE} bytes, not {len(self.public)}")


def seal(plaintext: bytes, key: EpochPublicKey, associated: bytes) -> bytes:
    """Encrypt `plaintext` under a fresh data key wrapped to `key`; `associated` must match to open."""
    return seal_to(key.public, key.epoch, PURPOSE_SEAL, plaintext, associated)


def sealed_epoch(blob: bytes) -> str:
    """The epoch id written in a sealed blob's header (which day's key opens it)."""
    return _parse(blob).label


def open_sealed(blob: bytes, day_private: X25519PrivateKey, associated: bytes) -> bytes:
    """Decrypt a blob made by `seal`; raise SealedDataError on any mismatch or damage."""
    return open_from(blob, day_private, PURPOSE_SEAL, associated)[1]


def seal_to(recipient: bytes, label: str, purpose: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """Seal to a raw X25519 public key (shared by segment sealing and approvals' share envelopes)."""
    label_bytes = label.encode("ascii")
    if not 0 < len(label_bytes) < 256:
        raise ValueError("a sealing label has 1 to 255 ASCII characters")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    prefix = MAGIC + bytes([VERSION, len(label_bytes)]) + label_bytes + ephemeral_public
    # A fresh random data key per call: a nonce is never reused under it, and losing one key
    # exposes one blob.
    data_key = AESGCM.generate_key(bit_length=256)
    wrap_nonce = os.urandom(NONCE_SIZE)
    wrapped = AESGCM(_wrapping_key(shared, purpose, ephemeral_public, recipient)).encrypt(
        wrap_nonce, data_key, prefix + associated
    )
    payload_nonce = os.urandom(NONCE_SIZE)
    header = prefix + wrap_nonce + wrapped + payload_nonce
    return header + AESGCM(data_key).encrypt(payload_nonce, plaintext, header + associated)


def open_from(blob: bytes, private: X25519PrivateKey, purpose: bytes, associated: bytes) -> tuple[str, bytes]:
    """Open a blob made by `seal_to`: (label, plaintext); SealedDataError on any mismatch."""
    parts = _parse(blob)
    recipient = private.public_key().public_bytes_raw()
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(parts.ephemeral_public))
        data_key = AESGCM(_wrapping_key(shared, purpose, parts.ephemeral_public, recipient)).decrypt(
            parts.wrap_nonce, parts.wrapped, parts.prefix + associated
        )
        plaintext = AESGCM(data_key).decrypt(parts.payload_nonce, parts.ciphertext, parts.header + associated)
    except (InvalidTag, ValueError) as exc:  # ValueError: a low-order ephemeral point (all-zero secret)
        raise SealedDataError(
            "sealed data does not open: wrong key, wrong associated data (camera, segment or time), or altered"
        ) from exc
    return parts.label, plaintext


def _wrapping_key(shared: bytes, purpose: bytes, ephemeral_public: bytes, recipient: bytes) -> bytes:
    info = b"veilwatch/vault/v1/" + purpose + b"\x00" + ephemeral_public + recipient
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(shared)


@dataclass(frozen=True)
class _Parts:
    label: str
    prefix: bytes  # magic .. ephemeral public key
    header: bytes  # magic .. payload nonce
    ephemeral_public: bytes
    wrap_nonce: bytes
    wrapped: bytes
    payload_nonce: bytes
    ciphertext: bytes


def _parse(blob: bytes) -> _Parts:
    if not blob.startswith(MAGIC):
        raise SealedDataError("not sealed veilwatch data (bad magic)")
    if len(blob) < len(MAGIC) + 2:
        raise SealedDataError("sealed data is truncated")
    version, label_size = struct.unpack_from("BB", blob, len(MAGIC))
    if version != VERSION:
        raise SealedDataError(f"sealed data of version {version} is not supported (this veilwatch reads {VERSION})")
    label_end = len(MAGIC) + 2 + label_size
    prefix_end = label_end + KEY_SIZE
    header_end = prefix_end + NONCE_SIZE + KEY_SIZE + TAG_SIZE + NONCE_SIZE
    if len(blob) < header_end + TAG_SIZE:
        raise SealedDataError("sealed data is truncated")
    try:
        label = blob[len(MAGIC) + 2 : label_end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise SealedDataError("sealed data has a damaged header") from exc
    wrapped_start = prefix_end + NONCE_SIZE
    return _Parts(
        label=label,
        prefix=blob[:prefix_end],
        header=blob[:header_end],
        ephemeral_public=blob[label_end:prefix_end],
        wrap_nonce=blob[prefix_end:wrapped_start],
        wrapped=blob[wrapped_start : wrapped_start + KEY_SIZE + TAG_SIZE],
        payload_nonce=blob[header_end - NONCE_SIZE : header_end],
        ciphertext=blob[header_end:],
    )
