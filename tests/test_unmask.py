"""Raw faces only sealed; unmasking only with K of N approvals: the sealed face store and the unmask desk.

Real parts throughout: a real K=2-of-N=3 vault (lighter Argon2 for speed), real SQLite, real
PyAV recordings made by the recorder, real sealed files on disk.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.helpers import serving
from veilwatch.audit.log import AuditLog
from veilwatch.audit.tlogwitness import WitnessEndpoint, WitnessService, collect_cosignatures
from veilwatch.audit.witness import create_witness
from veilwatch.errors import ApprovalRefused, VaultError
from veilwatch.frames import RawRegion
from veilwatch.server.witness_app import witness_app
from veilwatch.storage.db import Database
from veilwatch.storage.recorder import SegmentRecorder
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.sealed_faces import FaceChunkWriter, SealedFaceStore, decode_payload
from veilwatch.storage.unmask_requests import UnmaskStore
from veilwatch.vault.bundle import HolderSpec, KdfParams, create_vault
from veilwatch.vault.desk import NotYetWitnessedError, UnmaskDesk
from veilwatch.vault.public import VaultPublic
from veilwatch.vault.sealing import seal
from veilwatch.vault.unmask import approve

WIDTH, HEIGHT, FPS = 160, 96, 10.0
FACE = (40, 24, 56, 40)  # x0, y0, width, height of the "face" under the veil
LIGHT_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
HOLDERS = [
    HolderSpec("ana", "ana passphrase 1"),
    HolderSpec("ben", "ben passphrase 2"),
    HolderSpec("chi", "chi passphrase 3"),
]


def _raw_face(index: int) -> np.ndarray:
    """A textured patch that changes each frame (what a face would be)."""
    rng = np.random.default_rng(index)
    x = np.linspace(0, 6 * np.pi, FACE[2])
    y = np.linspace(0, 4 * np.pi, FACE[3])
    wave = (127 + 100 * np.sin(x[None, :] + index) * np.cos(y[:, None])).astype(np.uint8)
    patch = np.stack([wave, wave[::-1], np.roll(wave, index, axis=1)], axis=2)
    return np.asarray(np.clip(patch.astype(int) + rng.integers(-5, 5, patch.shape), 0, 255), np.uint8)


def _veiled_frame() -> np.ndarray:
    frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    x0, y0, w, h = FACE
    frame[y0 : y0 + h, x0 : x0 + w] = 128  # the veil: flat grey
    return frame


class Recorded:
    """A data folder with 3 s of a veiled recording and its sealed raw faces."""

    def __init__(self, root: Path, vault: VaultPublic) -> None:
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        self.db = Database.open(self.data_dir / "veilwatch.sqlite3")
        self.segments = SegmentIndex(self.db, self.data_dir)
        self.faces = SealedFaceStore(self.db, self.data_dir)
        self.unmasks = UnmaskStore(self.db)
        self.start = time.time() - 60
        self.raw: dict[int, np.ndarray] = {}
        recorder = SegmentRecorder("hall", self.data_dir, self.segments, FPS, WIDTH, HEIGHT, segment_seconds=2.0)
        writer = FaceChunkWriter(
            "hall", self.faces, lambda day, data, ad: seal(data, vault.epoch_key(day), ad), chunk_s=1.0
        )
        for i in range(30):
            at = self.start + i / FPS
            recorder.write(_veiled_frame(), at)
            self.raw[i] = _raw_face(i)
            writer.add(at, [RawRegion(FACE[0], FACE[1], self.raw[i])])
        recorder.close()
        writer.flush()


@pytest.fixture(scope="module")
def vault() -> tuple[VaultPublic, list[bytes]]:
    today = datetime.now(UTC).date()
    return create_vault(HOLDERS, 2, today.replace(day=1) if today.day > 1 else today, days=62, kdf=LIGHT_KDF)


@pytest.fixture
def recorded(tmp_path: Path, vault: tuple[VaultPublic, list[bytes]]) -> Iterator[Recorded]:
    rec = Recorded(tmp_path, vault[0])
    yield rec
    rec.db.close()


class Events:
    """What the desk hands to the log (the real audit log is tested elsewhere)."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.details: list[dict[str, Any]] = []

    def __call__(self, kind: str, actor: str, role: str, camera: str | None = None, **details: Any) -> None:
        self.kinds.append(kind)
        self.details.append(details)


def _desk(rec: Recorded, vault: VaultPublic, events: Events) -> UnmaskDesk:
    return UnmaskDesk(
        vault, rec.unmasks, rec.faces, rec.segments, events, lambda _: FPS, request_ttl_s=3600, clip_ttl_s=600
    )


def _decode(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data), mode="r") as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _face_error(frame: np.ndarray, raw: np.ndarray) -> float:
    x0, y0, w, h = FACE
    return float(np.abs(frame[y0 : y0 + h, x0 : x0 + w].astype(int) - raw.astype(int)).mean())


def test_k_of_n_approvals_unmask_only_the_requested_range(recorded: Recorded, vault: Any) -> None:
    public, bundles = vault
    events = Events()
    desk = _desk(recorded, public, events)
    start, end = recorded.start + 0.95, recorded.start + 2.05
    asked = desk.ask("hall", start, end, "police request 2026/113: assault in the hall", "olga", "operator")
    request = desk.request(asked.id)
    first = desk.approve(
        asked.id, approve(bundles[0], HOLDERS[0].passphrase, request, int(time.time())), "olga", "operator"
    )
    assert first.status == "pending" and not desk.has_clip(asked.id)
    done = desk.approve(
        asked.id, approve(bundles[2], HOLDERS[2].passphrase, request, int(time.time())), "olga", "operator"
    )
    assert done.status == "executed" and done.approvers == ("ana", "chi")
    assert events.kinds == ["unmask.request", "unmask.approve", "unmask.approve", "unmask.execute"]
    with pytest.raises(VaultError, match="not yours"):
        desk.clip(asked.id, "mallory", "operator")
    clip = desk.clip(asked.id, "olga", "operator")
    assert hashlib.sha256(clip.data).hexdigest() == events.details[3]["clip_sha256"]
    frames = _decode(clip.data)
    assert len(frames) == 11  # frames 10..20 lie inside [start + 0.95, start + 2.05]
    # The unmasked clip shows the raw face again (JPEG + H.264: close, not equal); the veil was flat grey.
    errors = [_face_error(frame, recorded.raw[10 + i]) for i, frame in enumerate(frames)]
    assert max(errors) < 12, errors
    veiled_error = _face_error(_veiled_frame(), recorded.raw[10])
    assert veiled_error > 40


def test_refusals(recorded: Recorded, vault: Any) -> None:
    public, bundles = vault
    desk = _desk(recorded, public, Events())
    asked = desk.ask("hall", recorded.start, recorded.start + 1, "a stated reason of some length", "olga", "auditor")
    other = desk.ask("hall", recorded.start, recorded.start + 2, "another stated reason here", "olga", "auditor")
    request, other_request = desk.request(asked.id), desk.request(other.id)
    now = int(time.time())
    ana = approve(bundles[0], HOLDERS[0].passphrase, request, now)
    desk.approve(asked.id, ana, "olga", "auditor")
    with pytest.raises(VaultError, match="already approved"):
        desk.approve(asked.id, approve(bundles[0], HOLDERS[0].passphrase, request, now), "olga", "auditor")
    with pytest.raises(ApprovalRefused):  # an approval of one request is useless for another
        desk.approve(other.id, ana, "olga", "auditor")
    with pytest.raises(ApprovalRefused):  # for another request
        desk.approve(asked.id, approve(bundles[1], HOLDERS[1].passphrase, other_request, now), "olga", "auditor")
    recorded.unmasks.revoke("ben", time.time(), "admin")
    with pytest.raises(ApprovalRefused, match="revoked"):
        desk.approve(asked.id, approve(bundles[1], HOLDERS[1].passphrase, request, now), "olga", "auditor")
    with pytest.raises(VaultError, match="passphrase"):
        desk.approve_with_share(asked.id, bundles[2], "not chi's passphrase", "olga", "auditor")
    assert recorded.unmasks.get(asked.id).status == "pending"  # type: ignore[union-attr]
    with pytest.raises(VaultError, match="reason"):
        desk.ask("hall", recorded.start, recorded.start + 1, "because", "olga", "auditor")
    with pytest.raises(VaultError, match="empty"):
        desk.ask("hall", recorded.start + 1, recorded.start, "a stated reason of some length", "olga", "auditor")


def test_a_restarted_server_cannot_finish_an_old_request(recorded: Recorded, vault: Any) -> None:
    public, bundles = vault
    asked = _desk(recorded, public, Events()).ask(
        "hall", recorded.start, recorded.start + 1, "reason enough here", "o", "admin"
    )
    fresh = _desk(recorded, public, Events())  # a new process: the request key died with the old one
    with pytest.raises(VaultError, match="restarted"):
        fresh.approve_with_share(asked.id, bundles[0], HOLDERS[0].passphrase, "o", "admin")
    assert recorded.unmasks.get(asked.id).status == "expired"  # type: ignore[union-attr]
    # And at start-up, every pending request of the earlier run is closed at once, with a leaf.
    old = _desk(recorded, public, Events()).ask(
        "hall", recorded.start, recorded.start + 1, "another reason", "o", "admin"
    )
    events = Events()
    assert _desk(recorded, public, events).expire_orphans() == 1
    assert recorded.unmasks.get(old.id).status == "expired" and events.kinds == ["unmask.expire"]  # type: ignore[union-attr]


def test_a_copy_of_the_data_folder_without_k_shares_holds_no_face_pixels(
    recorded: Recorded, vault: Any, tmp_path: Path
) -> None:
    public, bundles = vault
    copy = tmp_path / "stolen"
    shutil.copytree(recorded.data_dir, copy)
    files = [p for p in copy.rglob("*") if p.is_file()]
    sealed = [p for p in files if p.suffix == ".sealed"]
    assert sealed, "raw faces were not kept at all"
    everything = b"".join(p.read_bytes() for p in files)
    assert b"\xff\xd8\xff" not in b"".join(p.read_bytes() for p in sealed)  # no JPEG inside the sealed files
    for raw in recorded.raw.values():
        assert raw[0].tobytes()[:48] not in everything  # no row of raw face pixels anywhere, in any file
    # The veiled recordings show only the veil where the face was.
    store = SealedFaceStore(recorded.db, copy)
    for chunk in store.overlapping("hall", 0, time.time()):
        blob = store.read(chunk)
        for day_key_attempt in range(3):  # no single holder's share, nor the public file, opens it
            with pytest.raises(VaultError):
                _open_with_one_share(public, bundles[day_key_attempt], HOLDERS[day_key_attempt].passphrase, blob)
        with pytest.raises(Exception, match=r"(?i)magic|not a veilwatch"):
            decode_payload(blob)


def _open_with_one_share(public: VaultPublic, bundle: bytes, passphrase: str, blob: bytes) -> bytes:
    """Try to open a sealed chunk with one holder's share as if it were the key (it must fail)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from veilwatch.vault.bundle import unlock_bundle
    from veilwatch.vault.sealing import open_sealed, sealed_epoch

    day = sealed_epoch(blob)
    with unlock_bundle(bundle, passphrase) as unlocked:
        share = unlocked.share(day)
    return open_sealed(blob, X25519PrivateKey.from_private_bytes(share[:32].ljust(32, b"\0")), b"")


def test_a_region_reveals_only_the_faces_it_touches(recorded: Recorded, vault: Any) -> None:
    public, bundles = vault
    desk = _desk(recorded, public, Events())
    start, end = recorded.start, recorded.start + 0.45
    elsewhere = (100, 60, 160, 96)  # the lower right corner: the face (40..96, 24..64) is not in it
    for region, revealed in ((elsewhere, False), ((50, 30, 60, 40), True)):
        asked = desk.ask("hall", start, end, "only the person at the counter, please", "olga", "operator", region)
        request = desk.request(asked.id)
        assert request.region == region and str(list(region)) in request.summary()
        for holder in (1, 2):
            made = approve(bundles[holder], HOLDERS[holder].passphrase, request, int(time.time()))
            desk.approve(asked.id, made, "olga", "operator")
        frames = _decode(desk.clip(asked.id, "olga", "operator").data)
        errors = [_face_error(frame, recorded.raw[i]) for i, frame in enumerate(frames)]
        assert (max(errors) < 12) if revealed else (min(errors) > 40), (region, errors)
    with pytest.raises(VaultError, match="region"):
        desk.ask("hall", start, end, "a reason that is long enough", "olga", "operator", (10, 10, 5, 20))


def _approve_twice(desk: UnmaskDesk, request_id: str, bundles: list[bytes]) -> None:
    request = desk.request(request_id)
    now = int(time.time())
    desk.approve(request_id, approve(bundles[0], HOLDERS[0].passphrase, request, now), "olga", "operator")
    desk.approve(request_id, approve(bundles[1], HOLDERS[1].passphrase, request, now), "olga", "operator")


@pytest.mark.parametrize("damage", ["nothing recorded then", "a sealed file is gone"])
def test_an_unmask_that_fails_to_execute_is_refused_in_one_line_and_keeps_no_key(
    recorded: Recorded, vault: Any, damage: str
) -> None:
    public, bundles = vault
    events = Events()
    desk = _desk(recorded, public, events)
    if damage == "nothing recorded then":  # the recording lasted 3 s; this range is later, and empty
        start, end = recorded.start + 10, recorded.start + 20
    else:
        start, end = recorded.start, recorded.start + 2
        min(
            recorded.data_dir.rglob("*.sealed")
        ).unlink()  # the first chunk: inside the range (names start with its time)
    asked = desk.ask("hall", start, end, "a stated reason of some length", "olga", "operator")
    with pytest.raises(VaultError) as refused:  # one clear line, not a StorageError (HTTP 500)
        _approve_twice(desk, asked.id, bundles)
    assert "\n" not in str(refused.value)
    stored = recorded.unmasks.get(asked.id)
    assert stored is not None and stored.status == "refused" and stored.approvers == ("ana", "ben")
    assert events.kinds[-1] == "unmask.refuse" and not desk.has_clip(asked.id)
    chi = approve(bundles[2], HOLDERS[2].passphrase, desk.request(asked.id), int(time.time()))
    with pytest.raises(VaultError, match="already refused"):  # closed for good, not left pending
        desk.approve(asked.id, chi, "olga", "operator")


def test_a_share_file_sent_to_the_server_is_checked_before_any_passphrase_work(recorded: Recorded, vault: Any) -> None:
    import json

    public, bundles = vault
    desk = _desk(recorded, public, Events())
    asked = desk.ask("hall", recorded.start, recorded.start + 1, "a stated reason of some length", "olga", "auditor")
    costly = json.loads(bundles[0])
    costly["kdf"]["time_cost"] = 64  # up to 64 passes over up to 4 GiB, if the file alone decided
    began = time.monotonic()
    with pytest.raises(VaultError, match="Argon2"):
        desk.approve_with_share(asked.id, json.dumps(costly).encode(), HOLDERS[0].passphrase, "olga", "auditor")
    assert time.monotonic() - began < 0.5
    foreign = json.loads(bundles[0])
    foreign["signing_public"] = json.loads(bundles[1])["signing_public"]  # ana's name, ben's key
    with pytest.raises(VaultError, match="not a share file of this vault"):
        desk.approve_with_share(asked.id, json.dumps(foreign).encode(), HOLDERS[0].passphrase, "olga", "auditor")
    assert recorded.unmasks.approvals(asked.id) == []


def test_with_witnesses_a_clip_waits_for_a_cosigned_checkpoint_of_its_unmask(
    recorded: Recorded, vault: Any, tmp_path: Path
) -> None:
    public, bundles = vault
    log = AuditLog.open(recorded.db, tmp_path / "keys", "unmask-test.example/log", checkpoint_interval_s=0)
    log.witness_quorum = 1

    def record(kind: str, actor: str, role: str, camera: str | None = None, **details: Any) -> int:
        return log.append(json.dumps({"kind": kind, "actor": actor, "camera": camera, **details}).encode())

    state = tmp_path / "witness"
    cosigner, _ = create_witness(state, "witness.test/w1")
    with serving(witness_app(WitnessService(state, [log.verifier]))) as base:
        endpoint = WitnessEndpoint(cosigner.verifier, base)
        record("boot", "system", "system")
        assert collect_cosignatures(log, [endpoint])[0] == ["witness.test/w1"]  # an older checkpoint, cosigned
        parts = (recorded.unmasks, recorded.faces, recorded.segments)
        desk = UnmaskDesk(
            public, *parts, record, lambda _: FPS, request_ttl_s=3600, clip_ttl_s=600, witnessed=log.covers
        )
        asked = desk.ask(
            "hall", recorded.start, recorded.start + 1, "a stated reason of some length", "olga", "operator"
        )
        request = desk.request(asked.id)
        for bundle, holder in ((bundles[0], HOLDERS[0]), (bundles[1], HOLDERS[1])):
            desk.approve(asked.id, approve(bundle, holder.passphrase, request, int(time.time())), "olga", "operator")
        with pytest.raises(NotYetWitnessedError, match="not yet in a published checkpoint"):
            desk.clip(asked.id, "olga", "operator")
        log.checkpoint(force=True)
        with pytest.raises(NotYetWitnessedError):  # signed, not cosigned: not published
            desk.clip(asked.id, "olga", "operator")
        collect_cosignatures(log, [endpoint])
        clip = desk.clip(asked.id, "olga", "operator")
    assert clip.log_index is not None and log.covers(clip.log_index)


def test_listing_and_fetching_do_not_wait_while_a_clip_is_encoded(recorded: Recorded, vault: Any) -> None:
    public, bundles = vault
    encoding, finish = threading.Event(), threading.Event()

    def slow_fps(_camera: str) -> float:  # asked for just before the encode starts: holds it there
        encoding.set()
        finish.wait()
        return FPS

    desk = UnmaskDesk(
        public, recorded.unmasks, recorded.faces, recorded.segments, Events(), slow_fps,
        request_ttl_s=3600, clip_ttl_s=600,
    )  # fmt: skip
    asked = desk.ask("hall", recorded.start, recorded.start + 1, "a stated reason of some length", "olga", "operator")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        approving = pool.submit(_approve_twice, desk, asked.id, bundles)
        assert encoding.wait(60)
        try:
            # What the listing asks (and a second request) is answered while the clip is being made.
            assert pool.submit(desk.has_clip, asked.id).result(timeout=60) is False
            other = pool.submit(
                desk.ask, "hall", recorded.start, recorded.start + 1, "another stated reason", "o", "operator"
            )
            assert other.result(timeout=60).status == "pending"
            late = desk.request(asked.id)
            with pytest.raises(VaultError, match="being carried out"):
                desk.approve(
                    asked.id, approve(bundles[2], HOLDERS[2].passphrase, late, int(time.time())), "o", "operator"
                )
        finally:
            finish.set()
        approving.result(timeout=120)
    assert desk.has_clip(asked.id) and recorded.unmasks.get(asked.id).status == "executed"  # type: ignore[union-attr]
