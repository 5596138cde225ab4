"""The tamper-evident audit log: an RFC 6962 Merkle tree of every action, signed checkpoints, witnesses.

    merkle   pure hashing, proof building and proof checking (RFC 6962 / RFC 9162)
    note     C2SP signed notes, checkpoints and witness cosignatures, with Ed25519
    log      `AuditLog`: the log itself over the SQLite database, append-only
    verify   offline verification of an export against a checkpoint saved earlier
    witness  a witness's check that a log only grew since it last cosigned
    client   the log's HTTP API, as a client (for `veilwatch audit verify` and `veilwatch witness`)

`veilwatch.audit.merkle` alone is pure Python: outside tools can check its functions directly.
"""

from __future__ import annotations

from veilwatch.audit.log import AuditLog
from veilwatch.audit.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from veilwatch.audit.note import Checkpoint, Cosigner, NoteError, Signer, Verifier
from veilwatch.audit.verify import LogExport, VerifyResult, verify_log

__all__ = [
    "EMPTY_ROOT",
    "AuditLog",
    "Checkpoint",
    "Cosigner",
    "LogExport",
    "NoteError",
    "ProofError",
    "Signer",
    "Verifier",
    "VerifyResult",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
