"""Unmask requests, and key holders' approvals of them.

The server makes an `UnmaskRequest` (camera, time range, reason, requester, expiry, the days the
range touches) with a fresh X25519 key pair of its own for that request, keeping the private half in
memory only. A key holder, offline, runs `approve`: it opens their share bundle, takes only the
shares of the request's days, seals them to the request's public key (so a captured approval is
useless for any other request) and signs the approval, which names the request by its digest.

Both records are canonical JSON (sorted keys, no floats, versioned): the request's digest is what
approvals sign, and an approval's signature covers every field but itself, the sealed shares too.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from veilwatch.errors import VaultError
from veilwatch.vault._encoding import MAX_PIXEL, Fields, b64e, canonical
from veilwatch.vault.bundle import unlock_bundle
from veilwatch.vault.public import HOLDER_NAME, VaultPublic
from veilwatch.vault.sealing import KEY_SIZE, PURPOSE_APPROVAL, check_epoch, epoch_of, seal_to

__all__ = [
    "DEFAULT_REQUEST_LIFETIME_S",
    "Approval",
    "UnmaskRequest",
    "approval_associated_data",
    "approve",
    "days_touched",
    "new_request",
]

REQUEST_FORMAT = "veilwatch-unmask-request"
APPROVAL_FORMAT = "veilwatch-unmask-approval"
VERSION = 1
DEFAULT_REQUEST_LIFETIME_S = 3 * 24 * 3600  # holders are people; give them a few days
MAX_REASON = 2000
_ID = re.compile(r"[0-9a-f]{32}")
_US_PER_DAY = 86_400 * 1_000_000


def days_touched(start_us: int, end_us: int) -> tuple[str, ...]:
    """The UTC days (epoch ids) that the half-open range [start_us, end_us) of Unix microseconds touches."""
    if end_us <= start_us:
        raise ValueError("a time range must end after it starts")
    first = date(1970, 1, 1) + timedelta(days=start_us // _US_PER_DAY)
    last = date(1970, 1, 1) + timedelta(days=(end_us - 1) // _US_PER_DAY)
    return tuple(epoch_of(first + timedelta(days=i)) for i in range((last - first).days + 1))


def _when(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class UnmaskRequest:
    """What someone asks to see unveiled, why, until when; approvals are bound to its digest."""

    id: str  # 32 hex digits, random
    vault_id: str
    camera: str
    start_us: int  # Unix microseconds, inclusive
    end_us: int  # exclusive
    reason: str
    requester: str
    created: int  # Unix seconds
    expires: int
    days: tuple[str, ...]  # exactly the days [start_us, end_us) touches: no holder hands over more
    request_public_key: bytes  # X25519; approvals seal their shares to it
    # The faces to reveal: those whose veils touch this rectangle of the picture (x0, y0, x1, y1 in
    # the camera's output pixels); None reveals every face in the range. All others stay veiled.
    region: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id) or not _ID.fullmatch(self.vault_id):
            raise ValueError("request and vault ids are 32 lowercase hex digits")
        if not self.camera or not self.requester or len(self.camera) > 200 or len(self.requester) > 200:
            raise ValueError("a request names a camera and a requester (up to 200 characters each)")
        if not self.reason.strip() or len(self.reason) > MAX_REASON:
            raise ValueError(f"a request gives a reason (1 to {MAX_REASON} characters)")
        if self.days != days_touched(self.start_us, self.end_us):
            raise ValueError("the request's days must be exactly those its time range touches")
        if self.expires <= self.created:
            raise ValueError("a request must expire after it is made")
        if len(self.request_public_key) != KEY_SIZE:
            raise ValueError("the request key is a 32-byte X25519 public key")
        if self.region is not None:
            x0, y0, x1, y1 = self.region
            # The same bounds as reading it back: a request made is a request that can be read again.
            if not (0 <= x0 < x1 <= MAX_PIXEL and 0 <= y0 < y1 <= MAX_PIXEL):
                raise ValueError(
                    f"a request's region is x0, y0, x1, y1 with 0 <= x0 < x1, 0 <= y0 < y1, up to {MAX_PIXEL}"
                )

    def canonical(self) -> bytes:
        """The request's one byte encoding (also its file form)."""
        return canonical(
            {
                "format": REQUEST_FORMAT,
                "version": VERSION,
                "id": self.id,
                "vault_id": self.vault_id,
                "camera": self.camera,
                "start_us": self.start_us,
                "end_us": self.end_us,
                "reason": self.reason,
                "requester": self.requester,
                "created": self.created,
                "expires": self.expires,
                "days": list(self.days),
                "request_public_key": b64e(self.request_public_key),
                "region": list(self.region) if self.region is not None else None,
            }
        )

    def digest(self) -> bytes:
        """SHA-256 of the canonical bytes: what approvals name and sign."""
        return hashlib.sha256(self.canonical()).digest()

    def summary(self) -> str:
        """A few lines for a key holder to read before approving."""
        start = datetime.fromtimestamp(self.start_us / 1e6, UTC).isoformat(timespec="seconds")
        end = datetime.fromtimestamp(self.end_us / 1e6, UTC).isoformat(timespec="seconds")
        return (
            f"unmask request {self.id}\n"
            f"  camera     {self.camera}\n"
            f"  from       {start}\n  to         {end}\n"
            f"  reason     {' '.join(self.reason.split())}\n"
            f"  requester  {self.requester}\n"
            f"  expires    {_when(self.expires)}\n"
            f"  days       {', '.join(self.days)}\n"
            f"  faces      {'those touching ' + str(list(self.region)) if self.region else 'all in the range'}\n"
            f"  digest     {self.digest().hex()}"
        )

    @classmethod
    def from_json(cls, data: bytes) -> UnmaskRequest:
        """Read a request file; VaultFileError if malformed."""
        f = Fields.parse(data, "unmask request", form=REQUEST_FORMAT, versions=frozenset({VERSION}))
        f.only(*_REQUEST_KEYS)
        days = f.array("days")
        try:
            return cls(
                id=f.text("id"),
                vault_id=f.text("vault_id"),
                camera=f.text("camera"),
                start_us=f.integer("start_us"),
                end_us=f.integer("end_us"),
                reason=f.text("reason"),
                requester=f.text("requester"),
                created=f.integer("created"),
                expires=f.integer("expires"),
                days=tuple(check_epoch(d) if isinstance(d, str) else f.fail("days must be text") for d in days),
                request_public_key=f.blob("request_public_key", size=KEY_SIZE),
                region=f.region("region"),
            )
        except ValueError as exc:
            if isinstance(exc, VaultError):
                raise
            f.fail(str(exc))


_REQUEST_KEYS = (
    "id",
    "vault_id",
    "camera",
    "start_us",
    "end_us",
    "reason",
    "requester",
    "created",
    "expires",
    "days",
    "request_public_key",
    "region",
)


def new_request(
    vault: VaultPublic,
    *,
    camera: str,
    start_us: int,
    end_us: int,
    reason: str,
    requester: str,
    now: int,
    lifetime_s: int = DEFAULT_REQUEST_LIFETIME_S,
    region: tuple[int, int, int, int] | None = None,
) -> tuple[UnmaskRequest, X25519PrivateKey]:
    """A new request and its private key (keep the key in memory only; VaultError if the vault lacks a day)."""
    try:
        days = days_touched(start_us, end_us)
    except ValueError as exc:
        raise VaultError(str(exc)) from None
    for day in days:
        vault.epoch_key(day)
    key = X25519PrivateKey.generate()
    try:
        request = UnmaskRequest(
            id=secrets.token_hex(16),
            vault_id=vault.vault_id,
            camera=camera,
            start_us=start_us,
            end_us=end_us,
            reason=reason,
            requester=requester,
            created=now,
            expires=now + lifetime_s,
            days=days,
            request_public_key=key.public_key().public_bytes_raw(),
            region=region,
        )
    except ValueError as exc:
        raise VaultError(f"invalid unmask request: {exc}") from None
    return request, key


@dataclass(frozen=True)
class Approval:
    """One key holder's signed consent to one request, carrying their shares sealed to that request."""

    id: str  # 32 hex digits, random: the server refuses an id it has seen before
    request_id: str
    request_digest: bytes
    holder: str
    x: int
    created: int  # Unix seconds
    expires: int
    shares: bytes  # sealed to the request key: one 32-byte share per request day
    signature: bytes  # Ed25519 by the holder over `signed_bytes()`

    def _body(self) -> dict[str, Any]:
        return {
            "format": APPROVAL_FORMAT,
            "version": VERSION,
            "id": self.id,
            "request_id": self.request_id,
            "request_digest": self.request_digest.hex(),
            "holder": self.holder,
            "x": self.x,
            "created": self.created,
            "expires": self.expires,
            "shares": b64e(self.shares),
        }

    def signed_bytes(self) -> bytes:
        """What the holder signs: every field but the signature, canonically encoded."""
        return canonical(self._body())

    def to_json(self) -> bytes:
        """The approval file's bytes."""
        return canonical({**self._body(), "signature": b64e(self.signature)}) + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> Approval:
        """Read an approval file; VaultFileError if malformed (x is checked by the server, not here)."""
        f = Fields.parse(data, "approval", form=APPROVAL_FORMAT, versions=frozenset({VERSION}))
        f.only("id", "request_id", "request_digest", "holder", "x", "created", "expires", "shares", "signature")
        digest = f.text("request_digest")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            f.fail("request_digest must be 64 lowercase hex digits")
        if not _ID.fullmatch(f.text("id")) or not _ID.fullmatch(f.text("request_id")):
            f.fail("id and request_id must be 32 lowercase hex digits")
        if not HOLDER_NAME.fullmatch(f.text("holder")):
            f.fail("holder is not a valid holder name")
        return cls(
            id=f.text("id"),
            request_id=f.text("request_id"),
            request_digest=bytes.fromhex(digest),
            holder=f.text("holder"),
            x=f.integer("x"),
            created=f.integer("created"),
            expires=f.integer("expires"),
            shares=f.blob("shares"),
            signature=f.blob("signature", size=64),
        )


def approval_associated_data(approval_id: str, request: UnmaskRequest, holder: str, x: int) -> bytes:
    """What an approval's sealed shares are bound to: this approval, request, holder and x."""
    return canonical(
        {"approval": approval_id, "request": request.id, "digest": request.digest().hex(), "holder": holder, "x": x}
    )


def approve(
    bundle: bytes, passphrase: str, request: UnmaskRequest, now: int, *, lifetime_s: int | None = None
) -> Approval:
    """A holder's signed approval of `request`, with the shares of its days sealed to it (holder side, offline)."""
    with unlock_bundle(bundle, passphrase) as unlocked:
        info = unlocked.info
        if info.vault_id != request.vault_id:
            raise VaultError(f"{info.holder}'s share is for vault {info.vault_id}, the request for {request.vault_id}")
        if now >= request.expires:
            raise VaultError(f"the unmask request {request.id} expired at {_when(request.expires)}")
        shares = bytearray(b"".join(unlocked.share(day) for day in request.days))
        try:
            approval_id = secrets.token_hex(16)
            sealed = seal_to(
                request.request_public_key,
                request.id,
                PURPOSE_APPROVAL,
                bytes(shares),
                approval_associated_data(approval_id, request, info.holder, info.x),
            )
        finally:
            shares[:] = bytes(len(shares))
        expires = request.expires if lifetime_s is None else min(request.expires, now + lifetime_s)
        unsigned = Approval(approval_id, request.id, request.digest(), info.holder, info.x, now, expires, sealed, b"")
        return replace(unsigned, signature=unlocked.signing_key().sign(unsigned.signed_bytes()))
