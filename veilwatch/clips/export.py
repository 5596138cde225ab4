"""Exports: a veiled clip with its metadata stripped, and a manifest anyone can check offline.

The manifest ties the file to the tamper-evident log: the export's log entry names the clip's
SHA-256, an inclusion proof puts that entry under a tree root, and the log's signed checkpoint
vouches for the root. `verify_export` checks all three with nothing but the log's public key, so
a clip with one changed frame (or a manifest pointing at another entry) fails.

Manifest, version 1 (canonical JSON):
    {"format": "veilwatch-export-manifest", "v": 1, "file": NAME, "sha256": HEX, "bytes": N,
     "camera": NAME, "start_us": INT, "end_us": INT,
     "log": {"index": I, "entry": BASE64, "tree_size": S, "inclusion_proof": [BASE64, ...],
             "checkpoint": SIGNED NOTE TEXT}}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from veilwatch.errors import LogVerificationError

__all__ = ["MANIFEST_FORMAT", "ExportCheck", "ExportError", "build_manifest", "verify_export"]

MANIFEST_FORMAT = "veilwatch-export-manifest"
MANIFEST_VERSION = 1


class ExportError(LogVerificationError):
    """An export does not verify: the clip, its log entry, the proof or the checkpoint is wrong."""


@dataclass(frozen=True)
class ExportCheck:
    """What a verified export proves."""

    sha256: str
    camera: str
    start_us: int
    end_us: int
    log_index: int
    tree_size: int
    exported_by: str


def build_manifest(
    file_name: str,
    clip: bytes,
    camera: str,
    start_us: int,
    end_us: int,
    log_index: int,
    entry: bytes,
    tree_size: int,
    proof: Sequence[bytes],
    checkpoint: str,
) -> bytes:
    """The manifest of an exported clip, as canonical JSON bytes."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "v": MANIFEST_VERSION,
        "file": file_name,
        "sha256": hashlib.sha256(clip).hexdigest(),
        "bytes": len(clip),
        "camera": camera,
        "start_us": start_us,
        "end_us": end_us,
        "log": {
            "index": log_index,
            "entry": base64.b64encode(entry).decode("ascii"),
            "tree_size": tree_size,
            "inclusion_proof": [base64.b64encode(node).decode("ascii") for node in proof],
            "checkpoint": checkpoint,
        },
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify_export(clip: bytes, manifest_bytes: bytes, log_key: str) -> ExportCheck:
    """Check a clip against its manifest and the log's public key; ExportError names the first failure."""
    from veilwatch.audit.merkle import ProofError, leaf_hash, verify_inclusion
    from veilwatch.audit.note import Checkpoint, NoteError, Verifier, open_note

    manifest = _parse(manifest_bytes)
    digest = hashlib.sha256(clip).hexdigest()
    if digest != manifest["sha256"] or len(clip) != manifest["bytes"]:
        raise ExportError(
            f"the clip is not the exported one: its SHA-256 is {digest}, the manifest says {manifest['sha256']}"
        )
    log = manifest["log"]
    try:
        entry = base64.b64decode(log["entry"], validate=True)
        proof = [base64.b64decode(node, validate=True) for node in log["inclusion_proof"]]
    except (binascii.Error, TypeError, ValueError) as exc:
        raise ExportError("the manifest's log entry or proof is not valid base64") from exc
    record = _entry(entry)
    details = record.get("details")
    if record.get("kind") != "export" or not isinstance(details, dict) or details.get("sha256") != digest:
        raise ExportError("the log entry in the manifest is not the export of this clip")
    if record.get("camera") != manifest["camera"]:
        raise ExportError("the log entry names another camera than the manifest")
    # What is reported comes from the signed entry, so the manifest's copy must agree with it.
    if (details.get("start_us"), details.get("end_us")) != (manifest["start_us"], manifest["end_us"]):
        raise ExportError("the log entry names another time range than the manifest")
    try:
        checkpoint = Checkpoint.parse(open_note(log["checkpoint"], [Verifier.parse(log_key)]).text)
    except NoteError as exc:
        raise ExportError(f"the checkpoint is not signed by this log's key: {exc}") from exc
    if checkpoint.size != log["tree_size"]:
        raise ExportError(
            f"the proof is for a tree of {log['tree_size']} entries, the checkpoint for {checkpoint.size}"
        )
    try:
        verify_inclusion(leaf_hash(entry), log["index"], checkpoint.size, proof, checkpoint.root)
    except ProofError as exc:
        raise ExportError(f"the export's log entry is not in the signed log: {exc}") from exc
    return ExportCheck(
        digest, manifest["camera"], manifest["start_us"], manifest["end_us"], log["index"], checkpoint.size,
        str(record.get("actor", "")),
    )  # fmt: skip


def _parse(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError("the manifest is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ExportError("not a veilwatch export manifest")
    if manifest.get("v") != MANIFEST_VERSION:
        raise ExportError(f"unknown manifest version {manifest.get('v')!r}")
    log = manifest.get("log")
    fields = ("sha256", "bytes", "camera", "start_us", "end_us")
    if not isinstance(log, dict) or any(key not in manifest for key in fields):
        raise ExportError("the manifest lacks fields")
    if not all(key in log for key in ("index", "entry", "tree_size", "inclusion_proof", "checkpoint")):
        raise ExportError("the manifest's log part lacks fields")
    counts = (manifest["bytes"], log["index"], log["tree_size"])
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise ExportError("the manifest is malformed: bytes, index and tree_size are counts")
    texts = (manifest["sha256"], log["entry"], log["checkpoint"])
    if not all(isinstance(t, str) for t in texts) or not isinstance(log["inclusion_proof"], list):
        raise ExportError("the manifest is malformed: sha256, entry and checkpoint are text, the proof a list")
    return manifest


def _entry(entry: bytes) -> dict[str, Any]:
    try:
        record = json.loads(entry)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError("the log entry is not a veilwatch record") from exc
    if not isinstance(record, dict):
        raise ExportError("the log entry is not a veilwatch record")
    return record
