"""Server side of an unmask: check approvals, rebuild the day keys from K of them, hold them briefly.

`check_approval` is what the server runs when a holder hands in an approval (refuse at once, with
the rule that refused it); `collect` runs all those checks again over the whole set when the unmask
is executed, refusing the set if any approval fails (a bad approval next to good ones is a reason
to look, not to skip), then rebuilds each day's private key with `Shamir.combine` and checks it
against the day's public key, so a wrong share is caught before anything is decrypted.

The server must keep the request's private key in memory only (never in the database): with it,
the stored approvals are K shares; without it, they are ciphertext to no one.

Revoking a holder (`revoked`) stops the server accepting their approvals; it cannot take back the
shares they hold. A revoked holder and K - 1 others could still combine shares outside veilwatch,
given a copy of the sealed data, so after a revocation run set-up again (a new vault) for the days
ahead. Likewise a day key opens every camera's data of that day: the server decrypts only the
requested camera and range, and wipes the keys at once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from veilwatch.errors import ApprovalRefused, SealedDataError, VaultError
from veilwatch.vault.public import HOLDER_NAME, VaultPublic
from veilwatch.vault.sealing import KEY_SIZE, PURPOSE_APPROVAL, open_from, open_sealed, sealed_epoch
from veilwatch.vault.unmask import Approval, UnmaskRequest, approval_associated_data

__all__ = ["EpochKeys", "RefusalReason", "check_approval", "collect"]

HALF = KEY_SIZE // 2


class RefusalReason(StrEnum):
    """Why an approval (or a set of them) was refused; the value is stable, for logs and APIs."""

    REQUEST_EXPIRED = "request-expired"
    ZERO_X = "zero-x"
    DUPLICATE_HOLDER = "duplicate-holder"
    REPEATED_X = "repeated-x"
    UNKNOWN_HOLDER = "unknown-holder"
    REVOKED_HOLDER = "revoked-holder"
    BAD_SIGNATURE = "bad-signature"
    OTHER_REQUEST = "other-request"
    WRONG_X = "wrong-x"
    APPROVAL_EXPIRED = "approval-expired"
    REPLAYED = "replayed"
    TOO_FEW = "too-few"
    BAD_SHARES = "bad-shares"
    WRONG_SHARE = "wrong-share"


def _refuse(reason: RefusalReason, message: str, holder: str | None = None) -> ApprovalRefused:
    return ApprovalRefused(str(reason), message, holder=holder)


def _shown(name: str) -> str:
    """A holder name from an approval, safe to put in a one-line message (it may be anything)."""
    return name if HOLDER_NAME.fullmatch(name) else repr(name[:70])


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def check_approval(
    request: UnmaskRequest,
    approval: Approval,
    vault: VaultPublic,
    *,
    revoked: Collection[str],
    used_approval_ids: Collection[str],
    now: int,
) -> None:
    """Raise ApprovalRefused unless `approval` is a live, signed approval of `request` by a current holder."""
    _check_request(request, vault, now)
    name = _shown(approval.holder)
    if approval.x == 0:
        raise _refuse(RefusalReason.ZERO_X, f"{name}'s approval has x = 0, which is never a share index", name)
    holder = vault.holder(approval.holder)
    if holder is None:
        raise _refuse(RefusalReason.UNKNOWN_HOLDER, f"{approval.holder[:70]!r} is not a key holder of this vault", name)
    if holder.name in revoked:
        raise _refuse(RefusalReason.REVOKED_HOLDER, f"key holder {name} is revoked", name)
    try:
        Ed25519PublicKey.from_public_bytes(holder.signing_public).verify(approval.signature, approval.signed_bytes())
    except InvalidSignature:
        raise _refuse(
            RefusalReason.BAD_SIGNATURE, f"the approval by {name} does not carry {name}'s signature", name
        ) from None
    if approval.request_id != request.id or approval.request_digest != request.digest():
        raise _refuse(RefusalReason.OTHER_REQUEST, f"the approval by {name} is for another request", name)
    if approval.x != holder.x:
        raise _refuse(
            RefusalReason.WRONG_X, f"the approval by {name} has x = {approval.x}, {name}'s is {holder.x}", name
        )
    if now >= approval.expires:
        raise _refuse(
            RefusalReason.APPROVAL_EXPIRED, f"the approval by {name} expired at {_when(approval.expires)}", name
        )
    if approval.id in used_approval_ids:
        raise _refuse(RefusalReason.REPLAYED, f"the approval by {name} ({approval.id}) was used before", name)


def _check_request(request: UnmaskRequest, vault: VaultPublic, now: int) -> None:
    if request.vault_id != vault.vault_id:
        raise VaultError(f"request {request.id} is for vault {request.vault_id}, not {vault.vault_id}")
    if now >= request.expires:
        raise _refuse(
            RefusalReason.REQUEST_EXPIRED, f"the unmask request {request.id} expired at {_when(request.expires)}"
        )


def _check_set(approvals: Sequence[Approval]) -> None:
    names: set[str] = set()
    xs: set[int] = set()
    for approval in approvals:
        name = _shown(approval.holder)
        if approval.x == 0:
            raise _refuse(RefusalReason.ZERO_X, f"{name}'s approval has x = 0, which is never a share index", name)
        if approval.holder in names:
            raise _refuse(RefusalReason.DUPLICATE_HOLDER, f"two approvals by {name}", name)
        if approval.x in xs:
            raise _refuse(RefusalReason.REPEATED_X, f"two approvals carry x = {approval.x}", name)
        names.add(approval.holder)
        xs.add(approval.x)


def collect(
    request: UnmaskRequest,
    approvals: Sequence[Approval],
    vault: VaultPublic,
    *,
    revoked: Collection[str],
    used_approval_ids: Collection[str],
    now: int,
    request_private: X25519PrivateKey,
) -> EpochKeys:
    """Rebuild the request's day keys from K valid approvals; ApprovalRefused if the set does not qualify.

    After success, the caller records every approval id as used and wipes the returned keys.
    """
    _check_request(request, vault, now)
    _check_set(approvals)
    for approval in approvals:
        check_approval(request, approval, vault, revoked=revoked, used_approval_ids=used_approval_ids, now=now)
    if len(approvals) < vault.k:
        raise _refuse(RefusalReason.TOO_FEW, f"{len(approvals)} valid approval(s); {vault.k} of {vault.n} are needed")
    # Exactly K shares, as pycryptodome's combine expects; the others are checked but not needed.
    chosen = sorted(approvals, key=lambda a: a.x)[: vault.k]
    shares = [_open_shares(request, approval, request_private) for approval in chosen]
    keys: dict[str, bytearray] = {}
    try:
        for index, day in enumerate(request.days):
            keys[day] = _combine(chosen, shares, index)
            expected = vault.epoch_key(day).public
            if X25519PrivateKey.from_private_bytes(bytes(keys[day])).public_key().public_bytes_raw() != expected:
                raise _refuse(RefusalReason.WRONG_SHARE, f"the shares do not rebuild the key of {day}: one is wrong")
    except BaseException:
        _wipe_all(keys.values())
        raise
    finally:
        _wipe_all(shares)
    return EpochKeys(keys)


def _open_shares(request: UnmaskRequest, approval: Approval, request_private: X25519PrivateKey) -> bytearray:
    name = approval.holder
    try:
        label, plain = open_from(
            approval.shares,
            request_private,
            PURPOSE_APPROVAL,
            approval_associated_data(approval.id, request, name, approval.x),
        )
    except SealedDataError:
        raise _refuse(
            RefusalReason.BAD_SHARES, f"the shares in {name}'s approval do not open with this request's key", name
        ) from None
    if label != request.id or len(plain) != KEY_SIZE * len(request.days):
        raise _refuse(RefusalReason.BAD_SHARES, f"{name}'s approval does not hold one share per requested day", name)
    return bytearray(plain)


def _combine(chosen: Sequence[Approval], shares: Sequence[bytearray], index: int) -> bytearray:
    start = KEY_SIZE * index
    low = Shamir.combine([(a.x, bytes(s[start : start + HALF])) for a, s in zip(chosen, shares, strict=True)])
    high = Shamir.combine(
        [(a.x, bytes(s[start + HALF : start + KEY_SIZE])) for a, s in zip(chosen, shares, strict=True)]
    )
    return bytearray(low + high)


def _wipe_all(buffers: Collection[bytearray]) -> None:
    for buffer in buffers:
        buffer[:] = bytes(len(buffer))


class EpochKeys:
    """Rebuilt day private keys, held in memory for one unmask; `wipe()` or leaving `with` overwrites them.

    What wiping can and cannot do in Python: it overwrites the bytearrays this object owns, so a
    long-lived reference no longer leaks keys. It cannot erase the immutable `bytes` copies made on the
    way (AES-GCM's plaintext, Shamir.combine's halves, the argument to `from_private_bytes`): CPython
    frees them without clearing, and their memory may be reused late, or paged to swap. Key objects
    of pyca/cryptography keep a copy inside OpenSSL, which clears it when the object is freed. So run
    the server with core dumps off and encrypted swap; wiping shortens the window, it is no guarantee.
    """

    def __init__(self, keys: dict[str, bytearray]) -> None:
        self._keys = keys
        self._wiped = False

    @property
    def days(self) -> tuple[str, ...]:
        """The epochs whose keys are held."""
        return tuple(self._keys)

    def private_key(self, day: str) -> X25519PrivateKey:
        """The private key of a day (VaultError if not held or wiped)."""
        if self._wiped:
            raise VaultError("the unmask keys were wiped")
        key = self._keys.get(day)
        if key is None:
            raise VaultError(f"this unmask holds no key for {day[:40]} (it covers {', '.join(self._keys)})")
        return X25519PrivateKey.from_private_bytes(bytes(key))

    def open_sealed(self, blob: bytes, associated: bytes) -> bytes:
        """Open a sealed blob with the key of the day written in it (SealedDataError / VaultError)."""
        return open_sealed(blob, self.private_key(sealed_epoch(blob)), associated)

    def wipe(self) -> None:
        """Overwrite every key held (idempotent; best effort, see the class docstring)."""
        _wipe_all(self._keys.values())
        self._keys.clear()
        self._wiped = True

    def __enter__(self) -> EpochKeys:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return f"EpochKeys(days={list(self._keys)}, wiped={self._wiped})"
