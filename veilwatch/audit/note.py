"""Signed notes, checkpoints and witness cosignatures in the C2SP formats, with Ed25519.

    c2sp.org/signed-note        text ending in "\\n", a blank line, then lines "— <name> base64(key ID ‖ sig)"
    c2sp.org/tlog-checkpoint    the text is "<origin>\\n<size>\\n<base64 root>\\n" (+ optional extension lines)
    c2sp.org/tlog-cosignature   a witness signs "cosignature/v1\\ntime <t>\\n" + the checkpoint text;
                                its signature is key ID ‖ 8-byte big-endian t ‖ Ed25519 signature

Keys are strings as in golang.org/x/mod/sumdb/note, so standard tools read them:

    verifier key   <name>+<8 hex key ID>+base64(type ‖ 32-byte public key)
    signer key     PRIVATE+KEY+<name>+<8 hex key ID>+base64(type ‖ 32-byte seed)
    key ID         SHA-256(name ‖ "\\n" ‖ type ‖ public key)[:4]; type 0x01 for notes, 0x04 for cosignatures

Parsing is strict and follows sumdb's `Open`: malformed notes and keys are refused with a
`NoteError` (a `ValueError`) naming what is wrong; signatures by unknown keys are kept aside
unverified, as the spec requires; a known key's bad signature rejects the whole note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from veilwatch.audit.merkle import HASH_SIZE

__all__ = [
    "MAX_SIGNATURES",
    "SIG_COSIGNATURE_V1",
    "SIG_ED25519",
    "Checkpoint",
    "Cosignature",
    "Cosigner",
    "KeyFormatError",
    "MalformedNoteError",
    "Note",
    "NoteError",
    "OpenedNote",
    "Signature",
    "SignatureError",
    "SignedCheckpoint",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "cosignature_time",
    "key_id",
    "open_checkpoint",
    "open_note",
    "sign_note",
    "valid_name",
]

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_SIGNATURES = 100  # the spec asks to accept at least 16; sumdb stops at 100
MAX_TIMESTAMP = 2**63 - 1
MAX_TREE_SIZE = 2**64 - 1
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_COSIGNATURE_HEADER = "cosignature/v1\ntime {}\n"
_ED25519_SIGNATURE_SIZE = 64
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A note, checkpoint or key is malformed, or its signatures do not check out."""


class MalformedNoteError(NoteError):
    """The text is not a well-formed signed note or checkpoint."""


class KeyFormatError(NoteError):
    """A verifier or signer key string is malformed, of an unknown type, or its key ID is wrong."""


class SignatureError(NoteError):
    """A signature by a known key does not verify: the note was altered or forged."""


class UnverifiedNoteError(NoteError):
    """No signature by a trusted key (or not by the one required)."""


def valid_name(name: str) -> bool:
    """Whether a key name is allowed: non-empty, no Unicode spaces, no '+'."""
    return bool(name) and "+" not in name and not any(_is_space(ch) for ch in name)


def _is_space(ch: str) -> bool:
    # Go's unicode.IsSpace: ASCII white space, U+0085, U+00A0 and the Z categories.
    return ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]: the key ID a signature line starts with."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


def _b64decode(text: str, what: str, error: type[NoteError]) -> bytes:
    """Standard base64, canonical only (so that one value has exactly one spelling)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise error(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """A public key that checks note signatures (type 0x01) or witness cosignatures (type 0x04)."""

    name: str
    sig_type: int
    public_key: bytes  # 32 raw Ed25519 bytes

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise KeyFormatError(f"invalid key name {self.name[:80]!r}: no spaces or '+' allowed")
        if self.sig_type not in (SIG_ED25519, SIG_COSIGNATURE_V1):
            raise KeyFormatError(f"unknown signature type 0x{self.sig_type:02x} (0x01 and 0x04 are known)")
        if len(self.public_key) != 32:
            raise KeyFormatError(f"an Ed25519 public key is 32 bytes, got {len(self.public_key)}")

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Read a verifier key string `<name>+<key ID>+<base64 key>`."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _HEX8.fullmatch(parts[1]):
            raise KeyFormatError("a verifier key looks like <name>+<8 hex digits>+<base64 key>")
        name, hex_id, key64 = parts
        key = _b64decode(key64, "the verifier key", KeyFormatError)
        if not key:
            raise KeyFormatError("the verifier key is empty")
        verifier = cls(name, key[0], key[1:])
        if bytes.fromhex(hex_id) != verifier.key_id:
            raise KeyFormatError(f"key ID {hex_id} does not belong to this name and key")
        return verifier

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID."""
        return key_id(self.name, self.sig_type, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([self.sig_type]) + self.public_key)}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` (without the key ID) is this key's signature of the note text."""
        if self.sig_type == SIG_COSIGNATURE_V1:
            if len(signature) != 8 + _ED25519_SIGNATURE_SIZE:
                return False
            timestamp = int.from_bytes(signature[:8], "big")
            if timestamp > MAX_TIMESTAMP:
                return False
            text, signature = _cosigned_message(timestamp, text), signature[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


def _cosigned_message(timestamp: int, text: bytes) -> bytes:
    return _COSIGNATURE_HEADER.format(timestamp).encode() + text


@dataclass(frozen=True)
class _PrivateKey:
    name: str
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise KeyFormatError(f"invalid key name {self.name[:80]!r}: no spaces or '+' allowed")
        if len(self.seed) != 32:
            raise KeyFormatError(f"an Ed25519 seed is 32 bytes, got {len(self.seed)}")

    def _public_key(self) -> bytes:
        key = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)

    def _sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def _parse_skey(skey: str, accepted: tuple[int, ...]) -> tuple[str, int, bytes, bytes]:
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _HEX8.fullmatch(parts[3]):
        raise KeyFormatError("a signer key looks like PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
    key = _b64decode(parts[4], "the signer key", KeyFormatError)
    if not key or key[0] not in accepted:
        raise KeyFormatError("the signer key is empty or of an unknown type")
    return parts[2], key[0], key[1:], bytes.fromhex(parts[3])


@dataclass(frozen=True)
class Signer(_PrivateKey):
    """A log's private Ed25519 key (type 0x01): signs checkpoints. Keep it secret."""

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key for `name`."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Read a signer key string `PRIVATE+KEY+<name>+<key ID>+<base64 seed>`."""
        name, _, seed, hex_id = _parse_skey(skey, (SIG_ED25519,))
        signer = cls(name, seed)
        if hex_id != signer.verifier.key_id:
            raise KeyFormatError("the signer key's ID does not match its public key")
        return signer

    @property
    def verifier(self) -> Verifier:
        """The matching public key."""
        return Verifier(self.name, SIG_ED25519, self._public_key())

    @property
    def skey(self) -> str:
        """The signer key string (secret)."""
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{_b64(bytes([SIG_ED25519]) + self.seed)}"

    def sign(self, text: str) -> Signature:
        """This key's signature of a note text."""
        return Signature(self.name, self.verifier.key_id, self._sign(_note_text(text).encode()))


@dataclass(frozen=True)
class Cosigner(_PrivateKey):
    """A witness's private Ed25519 key: makes timestamped cosignature/v1 signatures (type 0x04)."""

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        """A new random witness key for `name`."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        """Read a witness signer key (type 0x04, or a plain 0x01 note key used for cosigning)."""
        name, sig_type, seed, hex_id = _parse_skey(skey, (SIG_ED25519, SIG_COSIGNATURE_V1))
        cosigner = cls(name, seed)
        if hex_id != key_id(name, sig_type, cosigner._public_key()):
            raise KeyFormatError("the signer key's ID does not match its public key")
        return cosigner

    @property
    def verifier(self) -> Verifier:
        """The witness's public key, as a type 0x04 verifier."""
        return Verifier(self.name, SIG_COSIGNATURE_V1, self._public_key())

    @property
    def skey(self) -> str:
        """The signer key string (secret), of type 0x04."""
        kid = self.verifier.key_id.hex()
        return f"PRIVATE+KEY+{self.name}+{kid}+{_b64(bytes([SIG_COSIGNATURE_V1]) + self.seed)}"

    def cosign(self, text: str, timestamp: int) -> Signature:
        """A cosignature of a checkpoint text at `timestamp` (POSIX seconds)."""
        Checkpoint.parse(text)  # a witness vouches for checkpoints only
        if not 0 <= timestamp <= MAX_TIMESTAMP:
            raise NoteError(f"cosignature time {timestamp} out of range")
        signed = self._sign(_cosigned_message(timestamp, text.encode()))
        return Signature(self.name, self.verifier.key_id, timestamp.to_bytes(8, "big") + signed)


# -- notes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line of a note: key name, key ID and the signature bytes after the ID."""

    name: str
    key_id: bytes
    data: bytes

    @property
    def line(self) -> str:
        """The signature line, with its final newline."""
        return f"{_SIGNATURE_PREFIX}{self.name} {_b64(self.key_id + self.data)}\n"


def cosignature_time(signature: Signature) -> int:
    """The POSIX time inside a cosignature/v1 signature."""
    if len(signature.data) != 8 + _ED25519_SIGNATURE_SIZE:
        raise MalformedNoteError(f"{signature.name}: not a cosignature/v1 signature")
    return int.from_bytes(signature.data[:8], "big")


@dataclass(frozen=True)
class Note:
    """A parsed (not yet verified) signed note: its text and its signature lines, in order."""

    text: str
    signatures: tuple[Signature, ...]

    @classmethod
    def parse(cls, message: str | bytes) -> Note:
        """Split a signed note into text and signatures; refuse anything malformed."""
        message = _decode(message)
        for ch in message:
            if ch < " " and ch != "\n":
                raise MalformedNoteError(f"control character U+{ord(ch):04X} in the note")
        split = message.rfind("\n\n")
        if split < 0:
            raise MalformedNoteError("no blank line between the text and the signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block or not block.endswith("\n"):
            raise MalformedNoteError("the note has no signature lines, or does not end in a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise MalformedNoteError(f"more than {MAX_SIGNATURES} signatures")
        return cls(text, tuple(_parse_signature(line) for line in lines))

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line for s in self.signatures)


def _decode(message: str | bytes) -> str:
    try:
        if isinstance(message, bytes):
            return message.decode("utf-8")
        message.encode("utf-8")  # lone surrogates are not UTF-8
    except UnicodeError as exc:
        raise MalformedNoteError("the note is not valid UTF-8") from exc
    return message


def _parse_signature(line: str) -> Signature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise MalformedNoteError(f"not a signature line: {line[:60]!r}")
    name, space, b64 = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space or not valid_name(name) or not b64:
        raise MalformedNoteError(f"malformed signature line: {line[:60]!r}")
    raw = _b64decode(b64, f"the signature of {name[:40]!r}", MalformedNoteError)
    if len(raw) < 5:
        raise MalformedNoteError(f"the signature of {name[:40]!r} is too short")
    return Signature(name, raw[:4], raw[4:])


def _note_text(text: str) -> str:
    """Check a text before signing it: it must stay the text when the note is parsed back."""
    if not text.endswith("\n"):
        raise MalformedNoteError("a note text must end with a newline")
    if any(ch < " " and ch != "\n" for ch in text):
        raise MalformedNoteError("a note text must not contain control characters")
    _decode(text)
    return text


@dataclass(frozen=True)
class OpenedNote:
    """A note whose signatures by known keys all verified; the others are kept aside, unverified."""

    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def open_note(message: str | bytes, verifiers: Sequence[Verifier]) -> OpenedNote:
    """Parse a note and verify every signature by a known key; at least one must be there."""
    note = Note.parse(message)
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot] != verifier:
            raise NoteError(f"two different keys share the name and ID {verifier.name}+{verifier.key_id.hex()}")
        known[slot] = verifier
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for signature in note.signatures:
        key = known.get((signature.name, signature.key_id))
        if key is None:
            if signature not in unverified:  # identical unknown lines count once
                unverified.append(signature)
            continue
        if any((s.name, s.key_id) == (signature.name, signature.key_id) for s in verified):
            continue  # as sumdb: one signature per key counts, repeats are dropped
        if not key.verify(note.text.encode(), signature.data):
            raise SignatureError(f"invalid signature by {signature.name}+{signature.key_id.hex()}")
        verified.append(signature)
    if not verified:
        raise UnverifiedNoteError("the note has no signature by a trusted key")
    return OpenedNote(note.text, tuple(verified), tuple(unverified))


def sign_note(text: str, signer: Signer | Cosigner, *, timestamp: int | None = None) -> str:
    """A new signed note: the text, a blank line, one signature line (cosigners need `timestamp`)."""
    if isinstance(signer, Cosigner):
        if timestamp is None:
            raise NoteError("a cosignature needs its time")
        signature = signer.cosign(text, timestamp)
    else:
        signature = signer.sign(text)
    return str(Note(_note_text(text), (signature,)))


# -- checkpoints --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, size and root hash (extension lines are kept but mean nothing here)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedNoteError("a checkpoint origin is one non-empty line")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedNoteError(f"tree size {self.size} out of range")
        if len(self.root) != HASH_SIZE:
            raise MalformedNoteError(f"a checkpoint root is {HASH_SIZE} bytes, got {len(self.root)}")
        if any(not line or "\n" in line for line in self.extensions):
            raise MalformedNoteError("checkpoint extension lines must be non-empty single lines")

    @property
    def text(self) -> str:
        """The note text: origin, size, base64 root, extensions, each line ending in a newline."""
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), _b64(self.root), *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint note text (without signatures)."""
        if not text.endswith("\n"):
            raise MalformedNoteError("a checkpoint text ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise MalformedNoteError("a checkpoint has at least three non-empty lines: origin, size, root")
        origin, size, root64, *extensions = lines
        if not _DECIMAL.fullmatch(size) or int(size) > MAX_TREE_SIZE:
            raise MalformedNoteError(f"checkpoint size {size[:30]!r} is not a decimal tree size")
        return cls(origin, int(size), _b64decode(root64, "the checkpoint root", MalformedNoteError), tuple(extensions))


@dataclass(frozen=True)
class Cosignature:
    """A witness's verified cosignature of a checkpoint."""

    witness: str
    key_id: bytes
    timestamp: int
    line: str


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified, with the witness cosignatures that verified too."""

    checkpoint: Checkpoint
    note: str
    cosignatures: tuple[Cosignature, ...]


def open_checkpoint(
    message: str | bytes, log_key: Verifier, witnesses: Sequence[Verifier] = (), *, origin: str | None = None
) -> SignedCheckpoint:
    """Verify a checkpoint signed by `log_key` (whose name must be its origin) and its known cosignatures."""
    if log_key.sig_type != SIG_ED25519:
        raise KeyFormatError("a log's key is an Ed25519 note key (type 0x01)")
    if any(w.sig_type != SIG_COSIGNATURE_V1 for w in witnesses):
        raise KeyFormatError("witness keys are cosignature/v1 keys (type 0x04)")
    opened = open_note(message, [log_key, *witnesses])
    if not any((s.name, s.key_id) == (log_key.name, log_key.key_id) for s in opened.verified):
        raise UnverifiedNoteError(f"the checkpoint is not signed by the log's key {log_key.name}")
    checkpoint = Checkpoint.parse(opened.text)
    want = log_key.name if origin is None else origin
    if checkpoint.origin != want:
        raise UnverifiedNoteError(f"checkpoint of {checkpoint.origin[:80]!r}, expected {want[:80]!r}")
    cosignatures = tuple(
        Cosignature(s.name, s.key_id, cosignature_time(s), s.line)
        for s in opened.verified
        if (s.name, s.key_id) != (log_key.name, log_key.key_id)
    )
    return SignedCheckpoint(checkpoint, _decode(message), cosignatures)
