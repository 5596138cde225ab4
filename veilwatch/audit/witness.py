"""A witness: cosigns a log's checkpoint only after checking that the log only grew since the last one.

The witness remembers, per log key, the last checkpoint it cosigned (its state). A new
checkpoint must be signed by the log, no smaller (else: rollback), with the same root if the
same size (else: split view), and provably an extension of the remembered one by the log's own
consistency proof (else: a rewritten history, i.e. a split view). Only then does the witness
cosign it (c2sp.org/tlog-cosignature, cosignature/v1) and remember it. On any refusal the state
stays as it was, so a log that showed one view to this witness cannot get another view cosigned.

    state/witness.key    the witness's private key (PRIVATE+KEY+…, type 0x04), mode 0600
    state/state.json     {"format": …, "logs": {"<log verifier key>": "<checkpoint text>"}}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from veilwatch.audit.files import read_private, write_private
from veilwatch.audit.merkle import ProofError, verify_consistency
from veilwatch.audit.note import (
    Checkpoint,
    Cosigner,
    Note,
    NoteError,
    Signature,
    Verifier,
    open_checkpoint,
)
from veilwatch.errors import AuditError, LogVerificationError

__all__ = [
    "KEY_FILE",
    "STATE_FILE",
    "Cosigned",
    "WitnessState",
    "check_and_cosign",
    "create_witness",
    "load_witness",
    "save_state",
]

KEY_FILE = "witness.key"
STATE_FILE = "state.json"
STATE_FORMAT = "veilwatch-witness-state/1"

ProofSource = Callable[[int, int], list[bytes]]


@dataclass(frozen=True)
class WitnessState:
    """The last checkpoint this witness cosigned, per log verifier key."""

    logs: Mapping[str, Checkpoint]

    def to_json(self) -> str:
        """The state file's text."""
        logs = {key: checkpoint.text for key, checkpoint in sorted(self.logs.items())}
        return json.dumps({"format": STATE_FORMAT, "logs": logs}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> WitnessState:
        """Read a state file's text."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
                raise ValueError(f"not a witness state ({STATE_FORMAT} expected)")
            return cls({str(key): Checkpoint.parse(value) for key, value in dict(data["logs"]).items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AuditError(f"the witness state is damaged: {exc}") from exc

    def with_checkpoint(self, log_key: Verifier, checkpoint: Checkpoint) -> WitnessState:
        """A new state remembering `checkpoint` for this log."""
        return WitnessState({**self.logs, log_key.vkey: checkpoint})


@dataclass(frozen=True)
class Cosigned:
    """The outcome of one witnessing round."""

    checkpoint: Checkpoint
    previous: Checkpoint | None
    note: str  # the log's signed checkpoint with this witness's cosignature, to hand back to the log


def check_and_cosign(
    previous: Checkpoint | None, note: str, log_key: Verifier, proofs: ProofSource, cosigner: Cosigner, now: int
) -> Cosigned:
    """Verify a log's new checkpoint against the last cosigned one, then cosign it; raise LogVerificationError."""
    try:
        signed = open_checkpoint(note, log_key)
    except NoteError as exc:
        raise LogVerificationError(f"the log's checkpoint does not verify: {exc}") from exc
    checkpoint = signed.checkpoint
    if previous is not None:
        _check_extends(previous, checkpoint, proofs)
    log_signatures = [s for s in Note.parse(note).signatures if (s.name, s.key_id) == (log_key.name, log_key.key_id)]
    cosignature: Signature = cosigner.cosign(checkpoint.text, now)
    cosigned = str(Note(checkpoint.text, (log_signatures[0], cosignature)))
    return Cosigned(checkpoint, previous, cosigned)


def _check_extends(previous: Checkpoint, checkpoint: Checkpoint, proofs: ProofSource) -> None:
    if checkpoint.size < previous.size:
        raise LogVerificationError(
            f"rollback: the log shows {checkpoint.size} entries, but this witness cosigned {previous.size}"
        )
    if checkpoint.size == previous.size:
        if checkpoint.root != previous.root:
            raise LogVerificationError(f"split view: two different trees of size {checkpoint.size} signed by the log")
        return
    proof = proofs(previous.size, checkpoint.size)
    try:
        verify_consistency(previous.size, checkpoint.size, proof, previous.root, checkpoint.root)
    except ProofError as exc:
        raise LogVerificationError(
            f"split view: the tree of {checkpoint.size} does not extend the tree of {previous.size} "
            f"this witness cosigned ({exc})"
        ) from exc


def create_witness(state_dir: Path, name: str) -> tuple[Cosigner, bool]:
    """The witness key in `state_dir`, made now if there is none; and whether it was made now."""
    path = state_dir / KEY_FILE
    if not path.exists():
        try:
            fresh = Cosigner.generate(name)
        except NoteError as exc:
            raise AuditError(f"invalid witness name {name[:80]!r}: {exc}") from exc
        if write_private(path, f"{fresh.skey}\n".encode(), replace=False):
            return fresh, True
    return load_witness(state_dir)[0], False


def load_witness(state_dir: Path) -> tuple[Cosigner, WitnessState]:
    """The witness's key and state."""
    path = state_dir / KEY_FILE
    if not path.exists():
        raise AuditError("no witness key here (run `veilwatch witness init` first)", path=str(state_dir))
    try:
        cosigner = Cosigner.parse(read_private(path))
    except NoteError as exc:
        raise AuditError(f"not a witness key: {exc}", path=str(path)) from exc
    state_path = state_dir / STATE_FILE
    state = WitnessState.from_json(read_private(state_path)) if state_path.exists() else WitnessState({})
    return cosigner, state


def save_state(state_dir: Path, state: WitnessState) -> None:
    """Replace the state file, whole."""
    write_private(state_dir / STATE_FILE, state.to_json().encode(), replace=True)
