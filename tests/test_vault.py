"""The key vault: sealing, K-of-N set-up, approvals bound to one request, every refusal, no leaks.

Real crypto throughout (pyca/cryptography, pycryptodome's Shamir, Argon2id); only the Argon2 cost
is lowered, through the explicit `KdfParams` the API takes, so that set-up takes milliseconds.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import pytest
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import veilwatch.vault
from veilwatch.errors import VaultError
from veilwatch.vault import (
    DEFAULT_KDF,
    Approval,
    ApprovalRefused,
    EpochKeys,
    EpochPublicKey,
    HolderSpec,
    KdfParams,
    RefusalReason,
    SealedDataError,
    UnmaskRequest,
    VaultFileError,
    VaultPublic,
    WrongPassphraseError,
    approve,
    check_approval,
    collect,
    create_vault,
    days_touched,
    new_request,
    open_sealed,
    read_bundle_info,
    seal,
    sealed_epoch,
    unlock_bundle,
)
from veilwatch.vault.sealing import PURPOSE_APPROVAL, open_from, seal_to
from veilwatch.vault.unmask import approval_associated_data

FAST = KdfParams(time_cost=1, memory_kib=64, parallelism=1)  # tests only: the default costs 64 MiB a try
NAMES = ("alice", "bob", "carol")
FIRST_DAY = date(2026, 3, 1)
DAYS = 4


def at(day: str, hour: int = 0, minute: int = 0) -> int:
    """Unix seconds of a UTC time."""
    return int(datetime.fromisoformat(f"{day}T{hour:02}:{minute:02}:00+00:00").timestamp())


NOW = at("2026-03-05", 9)


def us(day: str, hour: int = 0, minute: int = 0) -> int:
    """Unix microseconds of a UTC time."""
    return at(day, hour, minute) * 1_000_000


@dataclass(frozen=True)
class World:
    """A 2-of-3 vault over four days, its holders' bundles and passphrases."""

    vault: VaultPublic
    bundles: dict[str, bytes]
    passphrases: dict[str, str] = field(repr=False)

    def approval(self, name: str, request: UnmaskRequest, now: int = NOW, lifetime_s: int | None = None) -> Approval:
        """`name`'s genuine approval of `request`."""
        return approve(self.bundles[name], self.passphrases[name], request, now, lifetime_s=lifetime_s)

    def resign(self, approval: Approval, signer: str, **changes: object) -> Approval:
        """`approval` changed and signed again with `signer`'s real key (a holder misbehaving)."""
        changed = replace(approval, **changes)  # type: ignore[arg-type]
        with unlock_bundle(self.bundles[signer], self.passphrases[signer]) as unlocked:
            return replace(changed, signature=unlocked.signing_key().sign(changed.signed_bytes()))


def make_world(names: Sequence[str] = NAMES, k: int = 2, days: int = DAYS) -> World:
    """A fresh vault with cheap Argon2 parameters."""
    passphrases = {name: f"{name} correct horse battery" for name in names}
    vault, bundles = create_vault([HolderSpec(n, passphrases[n]) for n in names], k, FIRST_DAY, days, kdf=FAST)
    return World(vault, dict(zip(names, bundles, strict=True)), passphrases)


@pytest.fixture(scope="module")
def world() -> World:
    """One 2-of-3 vault shared by the tests that only read it."""
    return make_world()


def request_for(
    world: World,
    start_us: int = us("2026-03-02", 23, 50),
    end_us: int = us("2026-03-03", 0, 10),  # crosses midnight: two day keys
    now: int = NOW,
    lifetime_s: int = 3600,
) -> tuple[UnmaskRequest, X25519PrivateKey]:
    """A request by the operator 'olga' and its private key."""
    return new_request(
        world.vault,
        camera="door",
        start_us=start_us,
        end_us=end_us,
        reason="bicycle theft reported",
        requester="olga",
        now=now,
        lifetime_s=lifetime_s,
    )


def segment_ad(camera: str, start_us: int, end_us: int, name: str) -> bytes:
    """Associated data of a stored segment, as the recorder would bind it."""
    return f"veilwatch/faces/v1\n{camera}\n{start_us}\n{end_us}\n{name}\n".encode()


def sealed_segments(world: World, request: UnmaskRequest) -> list[tuple[bytes, bytes, bytes]]:
    """(plaintext, associated data, sealed blob) for one segment on each day of `request`."""
    out = []
    for day in request.days:
        plain = f"raw face pixels of {day}".encode() * 10
        ad = segment_ad("door", us(day, 12), us(day, 12, 1), f"faces/door/{day}.bin")
        out.append((plain, ad, seal(plain, world.vault.epoch_key(day), ad)))
    return out


def gather(
    world: World,
    request: UnmaskRequest,
    private: X25519PrivateKey,
    approvals: Sequence[Approval],
    *,
    revoked: frozenset[str] = frozenset(),
    used: frozenset[str] = frozenset(),
    now: int = NOW,
) -> EpochKeys:
    """`collect` with this world's vault."""
    return collect(
        request, approvals, world.vault, revoked=revoked, used_approval_ids=used, now=now, request_private=private
    )


# --- sealing --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def day_pair() -> tuple[EpochPublicKey, X25519PrivateKey]:
    """A stand-alone day key pair (sealing needs no vault)."""
    private = X25519PrivateKey.generate()
    return EpochPublicKey("2026-03-02", private.public_key().public_bytes_raw()), private


AD = segment_ad("door", 1_000_000, 2_000_000, "faces/door/0001.bin")


@pytest.mark.parametrize("size", [0, 1, 1000, 1 << 20])
def test_seal_then_open_round_trips(day_pair: tuple[EpochPublicKey, X25519PrivateKey], size: int) -> None:
    public, private = day_pair
    plain = bytes(range(256)) * (size // 256) + bytes(size % 256)
    blob = seal(plain, public, AD)
    assert open_sealed(blob, private, AD) == plain
    assert sealed_epoch(blob) == "2026-03-02"
    assert len(blob) == len(plain) + 6 + 2 + 10 + 32 + 12 + 48 + 12 + 16


def test_each_seal_uses_fresh_keys_and_hides_the_plaintext(day_pair: tuple[EpochPublicKey, X25519PrivateKey]) -> None:
    public, _ = day_pair
    plain = b"FACE" * 64
    first, second = seal(plain, public, AD), seal(plain, public, AD)
    assert first != second
    assert first[:18] == second[:18]  # magic, version, label: the only repeated bytes
    assert first[18:50] != second[18:50]  # a fresh ephemeral key each time
    assert b"FACE" not in first and public.public not in first


@pytest.mark.parametrize(
    "other",
    [
        segment_ad("garden", 1_000_000, 2_000_000, "faces/door/0001.bin"),  # another camera
        segment_ad("door", 1_000_001, 2_000_000, "faces/door/0001.bin"),  # another time
        segment_ad("door", 1_000_000, 2_000_000, "faces/door/0002.bin"),  # another segment
        b"",
        AD + b"\x00",
    ],
    ids=["camera", "time", "segment", "empty", "extended"],
)
def test_other_associated_data_does_not_open(day_pair: tuple[EpochPublicKey, X25519PrivateKey], other: bytes) -> None:
    public, private = day_pair
    with pytest.raises(SealedDataError, match="does not open"):
        open_sealed(seal(b"pixels", public, AD), private, other)


def test_another_key_does_not_open(day_pair: tuple[EpochPublicKey, X25519PrivateKey]) -> None:
    public, _ = day_pair
    with pytest.raises(SealedDataError, match="wrong key"):
        open_sealed(seal(b"pixels", public, AD), X25519PrivateKey.generate(), AD)


def test_every_flipped_bit_and_every_truncation_is_caught(day_pair: tuple[EpochPublicKey, X25519PrivateKey]) -> None:
    public, private = day_pair
    blob = seal(b"0123456789abcdef" * 2, public, AD)
    for index in range(len(blob)):
        for bit in (0, 7):
            damaged = bytearray(blob)
            damaged[index] ^= 1 << bit
            with pytest.raises(SealedDataError):
                open_sealed(bytes(damaged), private, AD)
    for length in range(len(blob)):
        with pytest.raises(SealedDataError):
            open_sealed(blob[:length], private, AD)
    with pytest.raises(SealedDataError):
        open_sealed(blob + b"\x00", private, AD)


def test_a_relabelled_blob_does_not_open_with_that_days_key() -> None:
    private = X25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    blob = seal(b"pixels", EpochPublicKey("2026-03-02", public), AD)
    # Same key for both days, so only the label binding can catch the move.
    moved = blob.replace(b"2026-03-02", b"2026-03-09", 1)
    assert sealed_epoch(moved) == "2026-03-09"
    with pytest.raises(SealedDataError, match="does not open"):
        open_sealed(moved, private, AD)


@pytest.mark.parametrize(
    ("blob", "message"),
    [(b"", "bad magic"), (b"PK\x03\x04" + bytes(200), "bad magic"), (b"VWSEAL\x02" + bytes(200), "version 2")],
)
def test_foreign_blobs_are_named(blob: bytes, message: str) -> None:
    with pytest.raises(SealedDataError, match=message):
        open_sealed(blob, X25519PrivateKey.generate(), AD)


# --- set-up -------------------------------------------------------------------------------------


def test_the_public_vault_holds_public_keys_only(world: World) -> None:
    vault = world.vault
    assert (vault.k, vault.n) == (2, 3)
    assert [(h.name, h.x) for h in vault.holders] == [("alice", 1), ("bob", 2), ("carol", 3)]
    assert [e.epoch for e in vault.epochs] == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert VaultPublic.from_json(vault.to_json()) == vault
    assert set(json.loads(vault.to_json())) == {"format", "version", "vault_id", "k", "holders", "epochs"}
    for name, x in (("alice", 1), ("bob", 2), ("carol", 3)):
        info = read_bundle_info(world.bundles[name])
        assert (info.holder, info.x, info.k, info.n, info.days) == (name, x, 2, 3, DAYS)
        assert info.vault_digest == vault.digest() and info.vault_id == vault.vault_id
        assert info.signing_public == vault.holders[x - 1].signing_public


def test_days_outside_the_vault_are_refused(world: World) -> None:
    with pytest.raises(VaultError, match=r"no key for 2026-03-05 \(it covers 2026-03-01 to 2026-03-04; run"):
        world.vault.epoch_key(date(2026, 3, 5))
    with pytest.raises(VaultError, match="no key for 2026-02-28"):
        request_for(world, us("2026-02-28", 23), us("2026-03-01", 1))


def test_strong_argon2_parameters_are_the_default() -> None:
    assert (DEFAULT_KDF.time_cost, DEFAULT_KDF.memory_kib, DEFAULT_KDF.parallelism) == (3, 65536, 4)
    _, bundles = create_vault([HolderSpec("a", "a" * 12), HolderSpec("b", "b" * 12)], 2, FIRST_DAY, 1)
    assert read_bundle_info(bundles[0]).kdf == DEFAULT_KDF
    assert json.loads(bundles[0])["kdf"]["memory_kib"] == 65536


@pytest.mark.parametrize(
    ("names", "k", "days", "passphrase", "message"),
    [
        (("a", "b", "c"), 1, 3, "x" * 12, r"K must be 2..N \(N = 3\), not 1"),
        (("a", "b", "c"), 4, 3, "x" * 12, "K must be 2..N"),
        (("a",), 1, 3, "x" * 12, "needs 2 to 255 key holders"),
        (("a", "a"), 2, 3, "x" * 12, "holder names must differ"),
        (("a", "B/x"), 2, 3, "x" * 12, "invalid holder name 'B/x'"),
        (("a", "b"), 2, 0, "x" * 12, "days must be 1..1100"),
        (("a", "b"), 2, 3, "short", "passphrase for a is too short"),
    ],
)
def test_bad_set_ups_are_refused(names: tuple[str, ...], k: int, days: int, passphrase: str, message: str) -> None:
    with pytest.raises(VaultError, match=message):
        create_vault([HolderSpec(n, passphrase) for n in names], k, FIRST_DAY, days, kdf=FAST)


def test_weak_or_absurd_kdf_parameters_are_refused() -> None:
    for bad in ({"time_cost": 0}, {"memory_kib": 4}, {"parallelism": 0}, {"memory_kib": 1 << 30}):
        with pytest.raises(ValueError, match="argon2"):
            KdfParams(**bad)


def test_a_wrong_passphrase_is_one_clear_line(world: World) -> None:
    with pytest.raises(WrongPassphraseError) as caught:
        unlock_bundle(world.bundles["bob"], "alice correct horse battery")
    assert caught.value.one_line() == "wrong passphrase for bob (or the share file was altered)"
    assert caught.value.exit_code == 6
    request, _ = request_for(world)
    with pytest.raises(WrongPassphraseError, match=r"^wrong passphrase for carol"):
        approve(world.bundles["carol"], "", request, NOW)


@pytest.mark.parametrize(
    ("field_name", "value"), [("holder", "bob"), ("x", 2), ("days", 3), ("first_day", "2026-03-02")]
)
def test_an_edited_bundle_header_does_not_open(world: World, field_name: str, value: object) -> None:
    edited = json.loads(world.bundles["alice"])
    edited[field_name] = value
    with pytest.raises(WrongPassphraseError):
        unlock_bundle(json.dumps(edited).encode(), world.passphrases["alice"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d.update(x=1.0), "not a share bundle"),
        (lambda d: d.update(x=True), "x must be an integer"),
        (lambda d: d.update(version=2), "share bundle version 2 is not supported"),
        (lambda d: d.update(format="veilwatch-vault"), "not a share bundle"),
        (lambda d: d["kdf"].update(memory_kib=1), "argon2 memory"),
        (lambda d: d.pop("ciphertext"), "missing field 'ciphertext'"),
    ],
)
def test_malformed_bundles_are_named(world: World, mutate: Callable[[dict[str, object]], object], message: str) -> None:
    data = json.loads(world.bundles["alice"])
    mutate(data)
    with pytest.raises(VaultFileError, match=message):
        read_bundle_info(json.dumps(data).encode())


# --- K of N --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", [*itertools.combinations(NAMES, 2), NAMES], ids="+".join)
def test_any_k_holders_unmask_the_requested_days(world: World, pair: tuple[str, ...]) -> None:
    request, private = request_for(world)
    assert request.days == ("2026-03-02", "2026-03-03")
    approvals = [world.approval(name, request) for name in pair]
    with gather(world, request, private, approvals) as keys:
        assert keys.days == request.days
        for plain, ad, blob in sealed_segments(world, request):
            assert keys.open_sealed(blob, ad) == plain
        with pytest.raises(VaultError, match="no key for 2026-03-01"):
            keys.private_key("2026-03-01")  # only the days asked for are released
    with pytest.raises(VaultError, match="wiped"):
        keys.private_key("2026-03-02")


def test_wipe_overwrites_the_held_keys(world: World) -> None:
    request, private = request_for(world)
    keys = gather(world, request, private, [world.approval(n, request) for n in ("alice", "bob")])
    held = list(keys._keys.values())
    assert all(any(buffer) for buffer in held)
    keys.wipe()
    keys.wipe()  # idempotent
    assert all(not any(buffer) for buffer in held)
    assert "wiped=True" in repr(keys)


def test_one_holder_alone_is_refused(world: World) -> None:
    request, private = request_for(world)
    with pytest.raises(ApprovalRefused) as caught:
        gather(world, request, private, [world.approval("bob", request)])
    assert caught.value.reason == RefusalReason.TOO_FEW
    assert caught.value.one_line() == "1 valid approval(s); 2 of 3 are needed"


# --- refusals: one rule, one reason, one message each ---------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One call of `collect`, built by a refusal case."""

    request: UnmaskRequest
    private: X25519PrivateKey
    approvals: list[Approval]
    revoked: frozenset[str] = frozenset()
    used: frozenset[str] = frozenset()
    now: int = NOW


def _genuine(world: World, *names: str, **changes: object) -> Attempt:
    request, private = request_for(world)
    return Attempt(request, private, [world.approval(n, request) for n in names], **changes)  # type: ignore[arg-type]


def _unknown(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "bob")
    return replace(attempt, approvals=[attempt.approvals[0], replace(attempt.approvals[1], holder="mallory")])


def _tampered(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "bob")
    return replace(attempt, approvals=[attempt.approvals[0], replace(attempt.approvals[1], expires=NOW + 10**6)])


def _signed_by_another(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "bob")
    return replace(attempt, approvals=[attempt.approvals[0], world.resign(attempt.approvals[1], "carol")])


def _other_request(world: World) -> Attempt:
    attempt = _genuine(world, "alice")
    other, _ = request_for(world)  # same camera, range and reason: only the id and key differ
    return replace(attempt, approvals=[*attempt.approvals, world.approval("bob", other)])


def _approval_expired(world: World) -> Attempt:
    request, private = request_for(world)
    short = world.approval("bob", request, lifetime_s=60)
    return Attempt(request, private, [world.approval("alice", request), short], now=NOW + 61)


def _replayed(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "bob")
    return replace(attempt, used=frozenset({attempt.approvals[1].id}))


def _duplicate(world: World) -> Attempt:
    attempt = _genuine(world, "alice")
    return replace(attempt, approvals=[*attempt.approvals, world.approval("alice", attempt.request)])


def _zero_x(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "bob")
    return replace(attempt, approvals=[attempt.approvals[0], world.resign(attempt.approvals[1], "bob", x=0)])


def _repeated_x(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "carol")
    return replace(attempt, approvals=[attempt.approvals[0], world.resign(attempt.approvals[1], "carol", x=1)])


def _wrong_x(world: World) -> Attempt:
    attempt = _genuine(world, "alice", "carol")
    return replace(attempt, approvals=[attempt.approvals[0], world.resign(attempt.approvals[1], "carol", x=2)])


def _wrong_share(world: World) -> Attempt:
    """Carol signs an approval whose sealed shares are off by one bit: only the key check can tell."""
    attempt = _genuine(world, "alice", "carol")
    good = attempt.approvals[1]
    with unlock_bundle(world.bundles["carol"], world.passphrases["carol"]) as unlocked:
        shares = bytearray(b"".join(unlocked.share(day) for day in attempt.request.days))
    shares[40] ^= 1  # second day, low half
    ad = approval_associated_data(good.id, attempt.request, "carol", 3)
    sealed = seal_to(attempt.request.request_public_key, attempt.request.id, PURPOSE_APPROVAL, bytes(shares), ad)
    return replace(attempt, approvals=[attempt.approvals[0], world.resign(good, "carol", shares=sealed)])


def _bad_shares(world: World) -> Attempt:
    """Bob signs an approval whose shares are sealed to some other key."""
    attempt = _genuine(world, "alice", "bob")
    other, _ = request_for(world)
    foreign = world.approval("bob", other)
    return replace(
        attempt, approvals=[attempt.approvals[0], world.resign(attempt.approvals[1], "bob", shares=foreign.shares)]
    )


REFUSALS: list[tuple[str, Callable[[World], Attempt], RefusalReason, str]] = [
    ("unknown", _unknown, RefusalReason.UNKNOWN_HOLDER, "'mallory' is not a key holder of this vault"),
    (
        "revoked",
        lambda w: _genuine(w, "alice", "bob", revoked=frozenset({"bob"})),
        RefusalReason.REVOKED_HOLDER,
        "key holder bob is revoked",
    ),
    ("tampered", _tampered, RefusalReason.BAD_SIGNATURE, "the approval by bob does not carry bob's signature"),
    ("signed-by-another", _signed_by_another, RefusalReason.BAD_SIGNATURE, "does not carry bob's signature"),
    ("other-request", _other_request, RefusalReason.OTHER_REQUEST, "the approval by bob is for another request"),
    (
        "request-expired",
        lambda w: _genuine(w, "alice", "bob", now=NOW + 3600),
        RefusalReason.REQUEST_EXPIRED,
        "expired at 2026-03-05 10:00:00Z",
    ),
    (
        "approval-expired",
        _approval_expired,
        RefusalReason.APPROVAL_EXPIRED,
        "the approval by bob expired at 2026-03-05 09:01:00Z",
    ),
    ("replayed", _replayed, RefusalReason.REPLAYED, "the approval by bob ("),
    ("duplicate-holder", _duplicate, RefusalReason.DUPLICATE_HOLDER, "two approvals by alice"),
    ("zero-x", _zero_x, RefusalReason.ZERO_X, "bob's approval has x = 0, which is never a share index"),
    ("repeated-x", _repeated_x, RefusalReason.REPEATED_X, "two approvals carry x = 1"),
    ("wrong-x", _wrong_x, RefusalReason.WRONG_X, "the approval by carol has x = 2, carol's is 3"),
    ("too-few", lambda w: _genuine(w, "carol"), RefusalReason.TOO_FEW, "1 valid approval(s); 2 of 3 are needed"),
    ("none", _genuine, RefusalReason.TOO_FEW, "0 valid approval(s)"),
    (
        "wrong-share",
        _wrong_share,
        RefusalReason.WRONG_SHARE,
        "the shares do not rebuild the key of 2026-03-03: one is wrong",
    ),
    (
        "bad-shares",
        _bad_shares,
        RefusalReason.BAD_SHARES,
        "the shares in bob's approval do not open with this request's key",
    ),
]


@pytest.mark.parametrize(("build", "reason", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(world: World, build: Callable[[World], Attempt], reason: RefusalReason, message: str) -> None:
    attempt = build(world)
    with pytest.raises(ApprovalRefused) as caught:
        gather(
            world,
            attempt.request,
            attempt.private,
            attempt.approvals,
            revoked=attempt.revoked,
            used=attempt.used,
            now=attempt.now,
        )
    assert caught.value.reason == reason
    assert message in caught.value.one_line()
    assert "\n" not in str(caught.value)


def test_every_refusal_reason_is_exercised() -> None:
    assert {r[2] for r in REFUSALS} == set(RefusalReason)


def test_a_single_approval_is_checked_when_handed_in(world: World) -> None:
    request, _ = request_for(world)
    good = world.approval("bob", request)
    check_approval(request, good, world.vault, revoked=(), used_approval_ids=(), now=NOW)
    with pytest.raises(ApprovalRefused, match="revoked"):
        check_approval(request, good, world.vault, revoked={"bob"}, used_approval_ids=(), now=NOW)
    with pytest.raises(ApprovalRefused, match="used before"):
        check_approval(request, good, world.vault, revoked=(), used_approval_ids={good.id}, now=NOW)


def test_a_captured_approval_is_useless_for_another_request(world: World) -> None:
    request, _ = request_for(world)
    other, other_private = request_for(world)
    captured = world.approval("bob", request)
    relabelled = replace(captured, request_id=other.id, request_digest=other.digest())
    helper = world.approval("alice", other)
    for forged, reason in [
        (relabelled, RefusalReason.BAD_SIGNATURE),  # whoever relabels it cannot sign as bob
        (world.resign(relabelled, "bob"), RefusalReason.BAD_SHARES),  # even bob cannot move his sealed shares
    ]:
        with pytest.raises(ApprovalRefused) as caught:
            gather(world, other, other_private, [helper, forged])
        assert caught.value.reason == reason
    with pytest.raises(SealedDataError):
        open_from(
            captured.shares, other_private, PURPOSE_APPROVAL, approval_associated_data(captured.id, other, "bob", 2)
        )


def test_holders_refuse_expired_or_foreign_requests(world: World) -> None:
    request, _ = request_for(world)
    with pytest.raises(VaultError, match=r"^the unmask request [0-9a-f]{32} expired at 2026-03-05 10:00:00Z$"):
        approve(world.bundles["alice"], world.passphrases["alice"], request, NOW + 3600)
    foreign = make_world(("dan", "erin"))
    with pytest.raises(VaultError, match="dan's share is for vault"):
        approve(foreign.bundles["dan"], foreign.passphrases["dan"], request, NOW)


def test_approvals_reveal_only_the_requested_days(world: World) -> None:
    request, private = request_for(world, us("2026-03-04", 10), us("2026-03-04", 11))
    assert request.days == ("2026-03-04",)
    approval = world.approval("alice", request)
    label, shares = open_from(
        approval.shares, private, PURPOSE_APPROVAL, approval_associated_data(approval.id, request, "alice", 1)
    )
    assert label == request.id
    with unlock_bundle(world.bundles["alice"], world.passphrases["alice"]) as unlocked:
        assert shares == unlocked.share("2026-03-04")


# --- requests and approvals as records ------------------------------------------------------------


def test_request_and_approval_files_round_trip(world: World) -> None:
    request, _ = request_for(world)
    text = request.canonical()
    assert UnmaskRequest.from_json(text) == request
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed) and b" " not in text.replace(b"bicycle theft reported", b"")
    assert parsed["format"] == "veilwatch-unmask-request" and parsed["version"] == 1
    approval = world.approval("carol", request)
    assert Approval.from_json(approval.to_json()) == approval
    assert "bicycle theft reported" in request.summary() and request.digest().hex() in request.summary()


@pytest.mark.parametrize(
    "changes",
    [
        {"camera": "garden"},
        {"start_us": us("2026-03-02", 23, 51)},
        {"reason": "curiosity"},
        {"requester": "otto"},
        {"expires": NOW + 7200},
        {"request_public_key": bytes(32)},
    ],
)
def test_the_digest_covers_every_field(world: World, changes: dict[str, object]) -> None:
    request, _ = request_for(world)
    assert replace(request, **changes).digest() != request.digest()  # type: ignore[arg-type]


def test_a_request_cannot_claim_more_days_than_its_range(world: World) -> None:
    request, _ = request_for(world)
    with pytest.raises(ValueError, match="exactly those its time range touches"):
        replace(request, days=(*request.days, "2026-03-04"))
    data = json.loads(request.canonical())
    data["days"] = ["2026-03-01", "2026-03-02", "2026-03-03"]
    with pytest.raises(VaultFileError, match="exactly those"):
        UnmaskRequest.from_json(json.dumps(data).encode())
    data["days"] = request.days
    data["start_us"] = 1.5
    with pytest.raises(VaultFileError, match="fraction"):
        UnmaskRequest.from_json(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (us("2026-03-02"), us("2026-03-03"), ("2026-03-02",)),  # the end is exclusive
        (us("2026-03-02", 23, 59), us("2026-03-03") + 1, ("2026-03-02", "2026-03-03")),
        (us("2026-02-28", 12), us("2026-03-01", 12), ("2026-02-28", "2026-03-01")),
        (us("2028-02-28", 12), us("2028-03-01", 1), ("2028-02-28", "2028-02-29", "2028-03-01")),
    ],
)
def test_days_touched(start: int, end: int, days: tuple[str, ...]) -> None:
    assert days_touched(start, end) == days


# --- nothing secret at rest -------------------------------------------------------------------


def _haystacks(files: Sequence[bytes]) -> Iterator[bytes]:
    """The files' bytes and every base64 text in them, decoded."""
    for data in files:
        yield data
        stack: list[object] = [json.loads(data)]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str):
                with contextlib.suppress(ValueError):
                    yield base64.b64decode(item, validate=True)


def test_bundle_and_vault_files_hold_no_key_material_in_the_clear(world: World) -> None:
    request, private = request_for(world, us("2026-03-01"), us("2026-03-05"))  # every day of the vault
    secrets: list[bytes] = []
    with gather(world, request, private, [world.approval(n, request) for n in ("alice", "carol")]) as keys:
        secrets += [keys.private_key(day).private_bytes_raw() for day in request.days]
    for name in NAMES:
        with unlock_bundle(world.bundles[name], world.passphrases[name]) as unlocked:
            secrets.append(unlocked.signing_key().private_bytes_raw())
            for day in request.days:
                share = unlocked.share(day)
                secrets += [share, share[:16], share[16:]]
    assert len(secrets) == DAYS + len(NAMES) * (1 + 3 * DAYS)
    haystacks = list(_haystacks([world.vault.to_json(), *world.bundles.values()]))
    for secret in secrets:
        for needle in (secret, secret.hex().encode(), base64.b64encode(secret)[:20]):
            assert not any(needle in haystack for haystack in haystacks)
    for passphrase in world.passphrases.values():
        assert not any(passphrase.encode() in haystack for haystack in haystacks)


def test_without_k_shares_nothing_opens() -> None:
    """Everything an attacker with fewer than K shares has (the public vault, the sealed blobs, one
    holder's bundle and passphrase) yields no day key, by any route we can think of; the same
    routes with K shares do, so the test can fail."""
    world = make_world(days=2)
    request, private = request_for(world, us("2026-03-01", 8), us("2026-03-02", 8))
    segments = sealed_segments(world, request)
    publics = {world.vault.epoch_key(day).public: day for day in request.days}

    def is_day_key(candidate: bytes) -> bool:
        return X25519PrivateKey.from_private_bytes(candidate).public_key().public_bytes_raw() in publics

    def combined(shares: dict[int, bytes], day: str) -> bytes:
        low = Shamir.combine([(x, s[:16]) for x, s in shares.items()])
        return low + Shamir.combine([(x, s[16:]) for x, s in shares.items()])

    public_files = [world.vault.to_json(), *(blob for _, _, blob in segments)]
    for name in NAMES:
        with unlock_bundle(world.bundles[name], world.passphrases[name]) as unlocked:
            x = unlocked.info.x
            secret = unlocked._secret
            own = {day: unlocked.share(day) for day in request.days}
        material = [*public_files, world.bundles[name], bytes(secret)]
        decoded = [*_haystacks([world.vault.to_json(), world.bundles[name]]), *material]
        windows = {h[i : i + 32] for h in decoded for i in range(len(h) - 31)}
        windows |= {combined({x: own[day]}, day) for day in request.days}  # one share "combined"
        windows |= {own[day] for day in request.days}
        assert not any(is_day_key(w) for w in windows), name
        for candidate in {combined({x: own[day]}, day) for day in request.days} | set(own.values()):
            for plain, ad, blob in segments:
                with pytest.raises(SealedDataError):
                    open_sealed(blob, X25519PrivateKey.from_private_bytes(candidate), ad)
                assert plain not in blob
        with pytest.raises(ApprovalRefused, match="2 of 3 are needed"):
            gather(world, request, private, [world.approval(name, request)])
    # The control: two holders' shares, combined the same way, are the day keys.
    pair: dict[str, dict[int, bytes]] = {day: {} for day in request.days}
    for name in ("alice", "carol"):
        with unlock_bundle(world.bundles[name], world.passphrases[name]) as unlocked:
            for day in request.days:
                pair[day][unlocked.info.x] = unlocked.share(day)
    for (plain, ad, blob), day in zip(segments, request.days, strict=True):
        assert is_day_key(combined(pair[day], day))
        assert open_sealed(blob, X25519PrivateKey.from_private_bytes(combined(pair[day], day)), ad) == plain


def test_the_public_surface_is_pinned() -> None:
    assert sorted(veilwatch.vault.__all__) == sorted(
        [
            "DEFAULT_KDF",
            "Approval",
            "ApprovalRefused",
            "BundleInfo",
            "EpochKeys",
            "EpochPublicKey",
            "HolderPublic",
            "HolderSpec",
            "KdfParams",
            "RefusalReason",
            "SealedDataError",
            "UnlockedBundle",
            "UnmaskRequest",
            "VaultError",
            "VaultFileError",
            "VaultPublic",
            "WrongPassphraseError",
            "approve",
            "check_approval",
            "collect",
            "create_vault",
            "days_touched",
            "new_request",
            "open_sealed",
            "read_bundle_info",
            "seal",
            "sealed_epoch",
            "unlock_bundle",
        ]
    )
    assert all(hasattr(veilwatch.vault, name) for name in veilwatch.vault.__all__)
