"""Signed notes, checkpoints and cosignatures against published notes and keys (sumdb, C2SP, a real log)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from veilwatch.audit.merkle import EMPTY_ROOT
from veilwatch.audit.note import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Checkpoint,
    Cosigner,
    KeyFormatError,
    MalformedNoteError,
    Note,
    NoteError,
    Signature,
    SignatureError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    cosignature_time,
    key_id,
    open_checkpoint,
    open_note,
    sign_note,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "data" / "note" / "vectors.json").read_text(encoding="utf-8")
)
SUMDB = VECTORS["sumdb"]
REAL = VECTORS["real_checkpoint"]


# --- keys ----------------------------------------------------------------------------------------


def test_sumdb_keys_parse_and_match() -> None:
    signer = Signer.parse(SUMDB["skey"])
    verifier = Verifier.parse(SUMDB["vkey"])
    assert signer.verifier == verifier
    assert (verifier.name, verifier.key_id.hex(), verifier.sig_type) == ("PeterNeumann", "c74f20a3", SIG_ED25519)
    assert verifier.vkey == SUMDB["vkey"] and signer.skey == SUMDB["skey"]
    assert repr(signer.seed) not in repr(signer)  # the secret never shows in logs or tracebacks


def test_every_mangling_of_a_verifier_key_is_refused() -> None:
    """sumdb's TestNewVerifier: every proper substring and every one-byte change fails."""
    vkey = SUMDB["vkey"]
    for i in range(len(vkey) + 1):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(KeyFormatError):
                    Verifier.parse(vkey[i:j])
    for i in range(len(vkey)):
        changed = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(KeyFormatError):
            Verifier.parse(changed)
    for bad in SUMDB["bad_verifiers"]:
        with pytest.raises(KeyFormatError):
            Verifier.parse(bad)


def test_every_mangling_of_a_signer_key_is_refused() -> None:
    skey = SUMDB["skey"]
    for i in range(len(skey) + 1):
        for j in range(i + 1, len(skey) + 1):
            if (i, j) != (0, len(skey)):
                with pytest.raises(KeyFormatError):
                    Signer.parse(skey[i:j])
    for i in range(len(skey)):
        with pytest.raises(KeyFormatError):
            Signer.parse(skey[:i] + chr(ord(skey[i]) + 1) + skey[i + 1 :])


def test_cosignature_keys_from_transparency_dev() -> None:
    cosig = VECTORS["cosignature_v1"]
    plain, witness = (Verifier.parse(k) for k in cosig["good_vkeys"])
    assert plain.sig_type == SIG_ED25519 and witness.sig_type == SIG_COSIGNATURE_V1
    assert witness.key_id == key_id(witness.name, SIG_COSIGNATURE_V1, witness.public_key)
    for bad in cosig["bad_vkeys"]:
        with pytest.raises(KeyFormatError):
            Verifier.parse(bad)


def test_generated_keys_round_trip_and_differ_by_type() -> None:
    signer, cosigner = Signer.generate("log.example/audit"), Cosigner.generate("witness.example/w1")
    assert Signer.parse(signer.skey) == signer
    assert Verifier.parse(signer.verifier.vkey) == signer.verifier
    assert Cosigner.parse(cosigner.skey) == cosigner
    assert Verifier.parse(cosigner.verifier.vkey).sig_type == SIG_COSIGNATURE_V1
    # The same seed as a note key and as a witness key has two different IDs (domain separation).
    twin = Signer(cosigner.name, cosigner.seed)
    assert twin.verifier.key_id != cosigner.verifier.key_id
    assert Cosigner.parse(twin.skey) == cosigner  # a plain note key may be used for cosigning
    with pytest.raises(KeyFormatError):
        Signer.parse(cosigner.skey)  # but a cosigning key never signs plain notes
    with pytest.raises(KeyFormatError):
        Signer.generate("has space")
    with pytest.raises(KeyFormatError):
        Cosigner.generate("a+b")


# --- notes ---------------------------------------------------------------------------------------


def test_sumdb_note_is_signed_byte_for_byte() -> None:
    signer = Signer.parse(SUMDB["skey"])
    assert sign_note(SUMDB["text"], signer) == SUMDB["text"] + "\n" + SUMDB["peter_sig"]
    with pytest.raises(MalformedNoteError):
        sign_note("abc", signer)


def test_sumdb_open_cases() -> None:
    peter, enoch = Verifier.parse(SUMDB["vkey"]), Verifier.parse(SUMDB["enoch_vkey"])
    text, peter_sig, enoch_sig = SUMDB["text"], SUMDB["peter_sig"], SUMDB["enoch_sig"]
    message = text + "\n" + peter_sig + enoch_sig

    one = open_note(message, [peter])
    assert one.text == text and [s.name for s in one.verified] == ["PeterNeumann"]
    assert [s.name for s in one.unverified] == ["EnochRoot"]
    both = open_note(message, [peter, enoch])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"] and not both.unverified
    with pytest.raises(UnverifiedNoteError):
        open_note(message, [])
    with pytest.raises(MalformedNoteError):
        open_note(text + "\n" + peter_sig * 101, [peter])
    with pytest.raises(SignatureError):
        open_note(text + "\n" + peter_sig[:60] + "ABCD" + peter_sig[60:], [peter])
    # Repeats: one signature per key counts, identical unknown lines count once.
    enoch_abcd = enoch_sig[:60] + "ABCD" + enoch_sig[60:]
    repeated = open_note(text + "\n" + peter_sig * 2 + enoch_sig * 3 + enoch_abcd, [peter])
    assert len(repeated.verified) == 1 and len(repeated.unverified) == 2


@pytest.mark.parametrize(
    "message",
    [
        SUMDB["text"],
        SUMDB["text"] + "\n",
        SUMDB["text"] + "\n" + SUMDB["peter_sig"][:-1],
        "\x01" + SUMDB["text"] + "\n" + SUMDB["peter_sig"],
        SUMDB["text"]
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        SUMDB["text"] + "\n" + SUMDB["peter_sig"] + "Unexpected line.\n",
        SUMDB["text"] + "\n" + SUMDB["peter_sig"].replace("=\n", "\n"),  # padding dropped: not canonical
        SUMDB["text"] + "\n" + "— PeterNeumann AAAA\n",  # shorter than a key ID and one byte
        SUMDB["text"] + "\r\n" + SUMDB["peter_sig"],
    ],
)
def test_malformed_notes_are_refused(message: str) -> None:
    with pytest.raises(MalformedNoteError):
        open_note(message, [Verifier.parse(SUMDB["vkey"])])


def test_invalid_utf8_is_refused() -> None:
    message = b"\xff" + (SUMDB["text"] + "\n" + SUMDB["peter_sig"]).encode()
    with pytest.raises(MalformedNoteError):
        Note.parse(message)


def test_c2sp_example_note_verifies() -> None:
    example = VECTORS["c2sp_signed_note"]
    verifier = Verifier.parse(example["vkey"])
    assert verifier.public_key.hex() == example["public_key_hex"]
    opened = open_note(example["text"] + "\n" + example["sig"], [verifier])
    assert opened.text == example["text"]
    with pytest.raises(SignatureError):
        open_note("This is an example message!\n\n" + example["sig"], [verifier])


def test_a_key_sharing_name_or_id_with_a_known_key_is_ignored_not_trusted() -> None:
    peter = Verifier.parse(SUMDB["vkey"])
    impostor = Signer.generate("PeterNeumann")  # same name, other key ID
    forged = sign_note(SUMDB["text"], impostor)
    with pytest.raises(UnverifiedNoteError):
        open_note(forged, [peter])


# --- checkpoints and cosignatures --------------------------------------------------------------


def test_a_real_cosigned_checkpoint_verifies() -> None:
    log_key = Verifier.parse(REAL["log_vkey"])
    witnesses = [Verifier.parse(k) for k in REAL["witness_vkeys"]]
    signed = open_checkpoint(REAL["note"], log_key, witnesses)
    assert signed.checkpoint.origin == "arche2025h1.staging.ct.transparency.dev"
    assert signed.checkpoint.size == 1432088532
    assert [c.witness for c in signed.cosignatures] == [w.name for w in witnesses]
    assert {c.timestamp for c in signed.cosignatures} == {0x6A122120}
    # The log's RFC 6962 signature (type 0x05) and an unconfigured witness are ignored, not refused.
    assert len(Note.parse(REAL["note"]).signatures) == 6


def test_a_real_checkpoint_with_a_changed_size_fails() -> None:
    clobbered = REAL["note"].replace("1432088532", "42", 1)
    with pytest.raises(SignatureError):
        open_checkpoint(clobbered, Verifier.parse(REAL["log_vkey"]))
    with pytest.raises(SignatureError):  # the witness's own signature catches it too
        open_checkpoint(clobbered, Verifier.parse(REAL["log_vkey"]), [Verifier.parse(REAL["witness_vkeys"][2])])


def test_cosignature_times_from_published_signatures() -> None:
    cosig = VECTORS["cosignature_v1"]
    raw = base64.b64decode(cosig["timestamp_sig"])
    assert cosignature_time(Signature("w", raw[:4], raw[4:])) == cosig["timestamp"]
    line = Note.parse(
        "a\n1\n"
        + base64.b64encode(EMPTY_ROOT).decode()
        + "\n\n"
        + VECTORS["c2sp_signed_note"]["cosignature_example_line"]
    )
    assert cosignature_time(line.signatures[0]) == VECTORS["c2sp_signed_note"]["cosignature_example_time"]


def test_witness_cosignature_round_trip_and_domain_separation() -> None:
    log, witness = Signer.generate("example.org/log"), Cosigner.generate("example.org/witness")
    checkpoint = Checkpoint("example.org/log", 7, EMPTY_ROOT)
    note = sign_note(checkpoint.text, log)
    cosigned = note + witness.cosign(checkpoint.text, 1_700_000_000).line
    signed = open_checkpoint(cosigned, log.verifier, [witness.verifier])
    assert [(c.witness, c.timestamp) for c in signed.cosignatures] == [("example.org/witness", 1_700_000_000)]
    # The cosignature signs "cosignature/v1\ntime …\n" + text, so it is no plain signature of the text.
    plain_reading = Verifier(witness.name, SIG_ED25519, witness.verifier.public_key)
    assert not plain_reading.verify(checkpoint.text.encode(), witness.cosign(checkpoint.text, 5).data[8:])
    # Changing the time inside the signature breaks it.
    sig = witness.cosign(checkpoint.text, 1_700_000_000)
    moved = Signature(sig.name, sig.key_id, (1_700_000_001).to_bytes(8, "big") + sig.data[8:])
    with pytest.raises(SignatureError):
        open_checkpoint(note + moved.line, log.verifier, [witness.verifier])
    # A note signed by a witness only is not a checkpoint of the log.
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(sign_note(checkpoint.text, witness, timestamp=1), log.verifier, [witness.verifier])
    with pytest.raises(NoteError):
        witness.cosign("not a checkpoint\n", 1)


def test_checkpoint_origin_must_be_the_key_name() -> None:
    log = Signer.generate("example.org/log")
    note = sign_note(Checkpoint("example.org/other", 1, EMPTY_ROOT).text, log)
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(note, log.verifier)
    assert open_checkpoint(note, log.verifier, origin="example.org/other").checkpoint.size == 1


ROOT64 = base64.b64encode(EMPTY_ROOT).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"origin\n5\n{ROOT64}",  # no final newline
        "origin\n5\n",
        f"\n5\n{ROOT64}\n",
        f"origin\n05\n{ROOT64}\n",
        f"origin\n-5\n{ROOT64}\n",
        f"origin\n+5\n{ROOT64}\n",
        f"origin\n 5\n{ROOT64}\n",
        f"origin\n{2**64}\n{ROOT64}\n",
        f"origin\n5\n{base64.b64encode(b'short').decode()}\n",
        f"origin\n5\n{ROOT64[:-1]}\n",
        f"origin\n5\n{ROOT64}\n\nextension\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(MalformedNoteError):
        Checkpoint.parse(text)


def test_checkpoint_text_round_trips_with_extensions() -> None:
    checkpoint = Checkpoint("example.org/log", 0, EMPTY_ROOT, ("ext one",))
    assert checkpoint.text == f"example.org/log\n0\n{ROOT64}\next one\n"
    assert Checkpoint.parse(checkpoint.text) == checkpoint
