"""The server's unmask desk: requests with reasons, approvals by key holders, and the unmasking itself.

Order of events, each one in the tamper-evident log *before* it takes effect (the `record`
callable raises when the log cannot take the entry, and then nothing happens):

1. `ask`: a staff member names camera, time range and reason. The desk makes the request (with a
   fresh X25519 key pair whose private half lives only in this process's memory) and stores it.
2. `approve` / `approve_with_share`: a key holder's signed approval, made offline with
   `veilwatch vault approve` or, in the browser, from their share file and passphrase. Each is
   checked on arrival (holder known and not revoked, signature, bound to this request, not
   expired, not replayed, no second approval of the same holder).
3. With K approvals the desk rebuilds the day keys in memory, opens only the sealed face chunks of
   the request's camera and range, puts the raw faces back into the veiled recording, encodes the
   clip in memory, wipes the keys and the request's private key, and keeps the clip for the
   requester for a limited time. Nothing unveiled is ever written to disk.

A server restart forgets every request's private key: pending requests cannot be completed and
must be asked again. That is the price of keeping the key in memory only.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from veilwatch.clips.recorded import encode_mp4, recorded_frames
from veilwatch.clips.unmask import Region, reveal
from veilwatch.errors import StorageError, VaultError
from veilwatch.storage.actions import ActionKind
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.sealed_faces import FaceChunk, SealedFaceStore
from veilwatch.storage.unmask_requests import StoredApproval, StoredRequest, UnmaskStatus, UnmaskStore
from veilwatch.vault.bundle import BundleInfo, KdfParams, read_bundle_info
from veilwatch.vault.collect import check_approval, collect
from veilwatch.vault.public import VaultPublic
from veilwatch.vault.unmask import Approval, UnmaskRequest, approve, new_request

__all__ = ["MAX_RANGE_S", "MAX_REASON", "MIN_REASON", "UnmaskClip", "UnmaskDesk"]

log = logging.getLogger(__name__)

MIN_REASON = 10  # characters: a reason, not a shrug
MAX_REASON = 1000  # characters: the reason goes into a log leaf, whose strings stop at 1,024
# A share file names its own Argon2 cost (up to 64 passes over 4 GiB). Sent to the server, the file is
# refused beyond this (4x the default's memory) before any work, so a request cannot exhaust the server.
MAX_KDF = KdfParams(time_cost=12, memory_kib=256 * 1024, parallelism=16)
MAX_RANGE_S = 3600.0  # one unmask reveals at most an hour; a longer need is several stated requests

# record(kind, actor, role, camera, **details): appends to the tamper-evident log or raises
# (the room's `ActionRecorder.record`).
Recorder = Callable[..., object]


class NotYetWitnessedError(VaultError):
    """The unmask's log entry is not yet in a published checkpoint that witnesses cosigned: ask again shortly."""


@dataclass(frozen=True)
class UnmaskClip:
    """An unmasked clip, in memory only, for its requester until `expires_at`."""

    request_id: str
    requester: str
    data: bytes
    sha256: str
    frames: int
    expires_at: float
    log_index: int | None = None  # the unmask.execute entry in the tamper-evident log


class UnmaskDesk:
    """Requests, approvals and execution of unmaskings for one server."""

    def __init__(
        self,
        vault: VaultPublic,
        store: UnmaskStore,
        faces: SealedFaceStore,
        segments: SegmentIndex,
        record: Recorder,
        fps_of: Callable[[str], float],
        *,
        request_ttl_s: float,
        clip_ttl_s: float,
        clock: Callable[[], float] = time.time,
        witnessed: Callable[[int], bool] | None = None,
    ) -> None:
        self.vault = vault
        self._witnessed = witnessed  # with witnesses: is this log entry in a published, cosigned checkpoint?
        self._store = store
        self._faces = faces
        self._segments = segments
        self._record = record
        self._fps_of = fps_of
        self._request_ttl_s = request_ttl_s
        self._clip_ttl_s = clip_ttl_s
        self._clock = clock
        # Short sections only (checks, the keys and clips maps): listing and fetching take it too,
        # so no clip is ever encoded while it is held.
        self._lock = threading.Lock()
        self._unlocking = threading.Lock()  # one passphrase derivation at a time: each takes up to MAX_KDF
        self._keys: dict[str, X25519PrivateKey] = {}
        self._clips: dict[str, UnmaskClip] = {}
        self._running: set[str] = set()  # requests whose clip is being made now (outside the lock)

    # --- asking ------------------------------------------------------------------------------------

    def ask(
        self,
        camera: str,
        start: float,
        end: float,
        reason: str,
        requester: str,
        role: str,
        region: tuple[int, int, int, int] | None = None,
    ) -> StoredRequest:
        """Make, log and store a request (faces touching `region`, or all); VaultError with one line if refused."""
        now = self._clock()
        reason, end = _checked_request(reason, start, end, now)
        request, private = new_request(
            self.vault,
            camera=camera,
            start_us=round(start * 1e6),
            end_us=round(end * 1e6),
            reason=reason,
            requester=requester,
            now=int(now),
            lifetime_s=int(self._request_ttl_s),
            region=region,
        )
        stored = StoredRequest(
            id=request.id,
            camera=camera,
            start_at=start,
            end_at=end,
            reason=reason,
            requester=requester,
            created_at=now,
            expires_at=float(request.expires),
            status="pending",
            canonical=request.canonical(),
            approvers=(),
            finished_at=None,
            note="",
        )
        self._record(
            ActionKind.UNMASK_REQUEST,
            requester,
            role,
            camera,
            request=request.id,
            start_us=request.start_us,
            end_us=request.end_us,
            reason=reason,
            request_sha256=request.digest().hex(),
            region=list(region) if region else None,
        )
        with self._lock:  # the key first: an approval arriving at once must find it
            self._keys[request.id] = private
        try:
            self._store.create(stored)
        except BaseException:
            with self._lock:
                self._keys.pop(request.id, None)
            raise
        return stored

    def request(self, request_id: str) -> UnmaskRequest:
        """The canonical request key holders approve (what `veilwatch vault approve --request` reads)."""
        stored = self._store.get(request_id)
        if stored is None:
            raise VaultError(f"no unmask request {request_id[:40]!r}")
        return UnmaskRequest.from_json(stored.canonical)

    # --- approving ---------------------------------------------------------------------------------

    def approve_with_share(
        self, request_id: str, bundle: bytes, passphrase: str, submitted_by: str, role: str
    ) -> StoredRequest:
        """Approve in the browser: the holder's share file and passphrase, used in memory for this request only."""
        request = self.request(request_id)
        _check_bundle(read_bundle_info(bundle), self.vault)
        with self._unlocking:
            approval = approve(bundle, passphrase, request, int(self._clock()))
        return self.approve(request_id, approval, submitted_by, role)

    def approve(self, request_id: str, approval: Approval, submitted_by: str, role: str) -> StoredRequest:
        """Check, log and keep one approval; with K of them, unmask. The request as it now stands."""
        with self._lock:
            stored = self._pending(request_id)
            request = UnmaskRequest.from_json(stored.canonical)
            now = int(self._clock())
            earlier = self._store.approvals(request_id)
            if any(item.holder == approval.holder for item in earlier):
                raise VaultError(f"{approval.holder} has already approved this request")
            used = {approval.id} if self._store.seen_approval(approval.id) else set()
            revoked = self._store.revoked()
            check_approval(request, approval, self.vault, revoked=revoked, used_approval_ids=used, now=now)
            self._record(
                ActionKind.UNMASK_APPROVE,
                submitted_by,
                role,
                stored.camera,
                request=request_id,
                holder=approval.holder,
                approval=approval.id,
            )
            self._store.add_approval(
                request_id,
                StoredApproval(approval.holder, approval.id, float(now), approval.to_json().decode("utf-8")),
            )
            ready = len(earlier) + 1 >= self.vault.k
            if ready:  # the request key leaves the map: no second execution, and no approval after this one
                private = self._keys.pop(request_id)
                self._running.add(request_id)
        if ready:
            try:
                self._execute(stored, request, revoked, private)
            finally:
                with self._lock:
                    self._running.discard(request_id)
        result = self._store.get(request_id)
        if result is None:
            raise StorageError(f"unmask request {request_id} vanished")
        return result

    def _pending(self, request_id: str) -> StoredRequest:
        stored = self._store.get(request_id)
        if stored is None:
            raise VaultError(f"no unmask request {request_id[:40]!r}")
        if stored.status != "pending":
            raise VaultError(f"this unmask request is already {stored.status}")
        if stored.id in self._running:
            raise VaultError("this unmask request has its approvals and is being carried out now")
        if self._clock() >= stored.expires_at:
            self._close(stored, "expired", (), "expired before enough approvals")
            raise VaultError("this unmask request has expired")
        if stored.id not in self._keys:
            self._close(stored, "expired", (), "the server restarted; its request key is gone")
            raise VaultError("the server restarted since this request was made: ask again")
        return stored

    # --- unmasking ---------------------------------------------------------------------------------

    def _execute(
        self, stored: StoredRequest, request: UnmaskRequest, revoked: set[str], private: X25519PrivateKey
    ) -> None:
        approvals = [Approval.from_json(item.body.encode("utf-8")) for item in self._store.approvals(stored.id)]
        names = tuple(sorted(a.holder for a in approvals))
        try:
            chunks = self._open_chunks(stored, request, approvals, revoked, private)
            frames = recorded_frames(self._segments, stored.camera, stored.start_at, stored.end_at)
            region = Region(*request.region) if request.region else None
            data, count = encode_mp4(reveal(frames, chunks, region), self._fps_of(stored.camera))
        except (VaultError, StorageError) as exc:
            # Its key is gone, so the request can never run: logged and closed, not left pending.
            why = " ".join(str(exc).split())[:300]
            self._record(ActionKind.UNMASK_REFUSE, "system", "system", stored.camera, request=stored.id, why=why)
            self._close(stored, "refused", names, why)
            if isinstance(exc, VaultError):
                raise
            raise VaultError(f"the unmask could not be made: {why}") from exc
        digest = hashlib.sha256(data).hexdigest()
        index = self._record(
            ActionKind.UNMASK_EXECUTE,
            "system",
            "system",
            stored.camera,
            request=stored.id,
            approvers=list(names),
            frames=count,
            faces_frames=sum(len(chunk.frames) for chunk in chunks),
            clip_sha256=digest,
        )
        self._close(stored, "executed", names, f"{count} frames")
        expires = self._clock() + self._clip_ttl_s
        log_index = index if isinstance(index, int) else None
        clip = UnmaskClip(stored.id, stored.requester, data, digest, count, expires, log_index)
        with self._lock:
            self._clips[stored.id] = clip

    def _open_chunks(
        self,
        stored: StoredRequest,
        request: UnmaskRequest,
        approvals: list[Approval],
        revoked: set[str],
        private: X25519PrivateKey,
    ) -> list[FaceChunk]:
        """Rebuild the day keys in memory, open only this camera's chunks of the range, and wipe the keys."""
        # The request key left the map before this ran, whatever happens: no approval can be used again.
        with collect(
            request,
            approvals,
            self.vault,
            revoked=revoked,
            used_approval_ids=(),
            now=int(self._clock()),
            request_private=private,
        ) as keys:
            return [
                self._faces.open(chunk, lambda _day, blob, associated: keys.open_sealed(blob, associated))
                for chunk in self._faces.overlapping(stored.camera, stored.start_at, stored.end_at)
                if chunk.day in request.days  # a chunk starting exactly at the (exclusive) end is not asked for
            ]

    def expire_orphans(self) -> int:
        """At start-up: close the pending requests of an earlier run (their keys died with it); how many."""
        orphans = [r for r in self._store.recent(limit=10_000) if r.status == "pending" and r.id not in self._keys]
        for stored in orphans:
            self._close(stored, "expired", (), "the server restarted; its request key is gone")
        return len(orphans)

    def _close(self, stored: StoredRequest, status: UnmaskStatus, approvers: tuple[str, ...], note: str) -> None:
        self._keys.pop(stored.id, None)
        if status == "expired":
            self._record(ActionKind.UNMASK_EXPIRE, "system", "system", stored.camera, request=stored.id)
        self._store.finish(stored.id, status, self._clock(), approvers, note)

    # --- the clip ----------------------------------------------------------------------------------

    def clip(self, request_id: str, viewer: str, role: str) -> UnmaskClip:
        """The unmasked clip, for its requester only, until it expires (each fetch is logged)."""
        with self._lock:
            self._drop_expired_clips()
            clip = self._clips.get(request_id)
        if clip is None or clip.requester != viewer:
            raise VaultError("no unmasked clip for you here (not yours, not made, or expired)")
        if self._witnessed is not None and (clip.log_index is None or not self._witnessed(clip.log_index)):
            raise NotYetWitnessedError(
                "the unmask is not yet in a published checkpoint cosigned by the witnesses: try again shortly"
            )
        stored = self._store.get(request_id)
        camera = stored.camera if stored else None
        self._record(ActionKind.UNMASK_FETCH, viewer, role, camera, request=request_id, clip_sha256=clip.sha256)
        return clip

    def has_clip(self, request_id: str) -> bool:
        """Whether an unexpired clip is waiting for this request."""
        with self._lock:
            self._drop_expired_clips()
            return request_id in self._clips

    def _drop_expired_clips(self) -> None:
        now = self._clock()
        for request_id in [r for r, c in self._clips.items() if c.expires_at <= now]:
            del self._clips[request_id]


def _check_bundle(info: BundleInfo, vault: VaultPublic) -> None:
    """Refuse, before its passphrase is tried, a share file of another vault or holder, or too costly to open."""
    holder = vault.holder(info.holder)
    known = holder is not None and (holder.x, holder.signing_public) == (info.x, info.signing_public)
    if info.vault_id != vault.vault_id or not known:
        raise VaultError(f"not a share file of this vault ({vault.vault_id}) and its holder {info.holder[:64]!r}")
    cost, most = info.kdf, MAX_KDF
    if cost.time_cost > most.time_cost or cost.memory_kib > most.memory_kib or cost.parallelism > most.parallelism:
        raise VaultError(
            f"this share file asks for more Argon2 work than the server does (at most t={most.time_cost}, "
            f"m={most.memory_kib} KiB, p={most.parallelism}): approve with `veilwatch vault approve`"
        )


def _checked_request(reason: str, start: float, end: float, now: float) -> tuple[str, float]:
    """The reason with its spaces tidied, and the end cut at now; VaultError when either cannot be asked for."""
    reason = " ".join(reason.split())
    if len(reason) < MIN_REASON:
        raise VaultError(f"state a reason (at least {MIN_REASON} characters)")
    if len(reason) > MAX_REASON:
        raise VaultError(f"state the reason in at most {MAX_REASON} characters")
    if not start >= 0:  # also NaN; a day before 1970 (or before year 1) has no key
        raise VaultError("the time range must start after 1970 (UTC seconds)")
    if not end > start:
        raise VaultError("the time range is empty: 'end' must come after 'start'")
    if end - start > MAX_RANGE_S:
        raise VaultError(f"one request covers at most {MAX_RANGE_S / 60:.0f} minutes")
    if start > now:
        raise VaultError("the time range lies in the future")
    return reason, min(end, now)  # nothing is recorded after now
