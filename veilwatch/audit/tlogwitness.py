"""C2SP tlog-witness: `POST <prefix>/add-checkpoint`, as the witness that answers it and as the log that asks.

The request body is `old <size>\\n`, up to 63 consistency proof lines (base64), an empty line and
the signed checkpoint. The witness answers 200 with its cosignature/v1 line(s); 404 for a log it
does not know (by origin), 403 if the log's signature does not verify, 400 for a malformed body or
an old size above the checkpoint's, 409 with its own size (`text/x.tlog.size`) if the old size is
not the size it last cosigned (a rollback, or a log that forgot), 409 too for a second root at the
same size (a split view), and 422 if the consistency proof fails. The check and the update of its
state happen under one lock, so two requests cannot roll it back.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from veilwatch.audit.merkle import ProofError, verify_consistency
from veilwatch.audit.note import Checkpoint, Note, NoteError, Verifier, open_checkpoint
from veilwatch.audit.witness import WitnessState, load_witness, save_state
from veilwatch.errors import AuditError

if TYPE_CHECKING:
    from veilwatch.audit.log import AuditLog

__all__ = [
    "SIZE_TYPE",
    "Answer",
    "WitnessEndpoint",
    "WitnessService",
    "Witnessing",
    "add_checkpoint_body",
    "collect_cosignatures",
    "request_cosignature",
]

_logger = logging.getLogger(__name__)
SIZE_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body, content type."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], note: str) -> str:
    """The request body of add-checkpoint."""
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return "".join(lines) + note


def _parse_body(body: str) -> tuple[int, list[bytes], str]:
    """(old size, proof, note) of a request body; ValueError if malformed."""
    head, sep, note = body.partition("\n\n")
    if not sep:
        raise ValueError("no empty line before the checkpoint")
    lines = head.split("\n")
    first = lines[0].split(" ")
    if len(first) != 2 or first[0] != "old" or not first[1].isdigit() or str(int(first[1])) != first[1]:
        raise ValueError("the first line is not `old <size>`")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"more than {MAX_PROOF_LINES} proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error as exc:
        raise ValueError("a proof line is not base64") from exc
    return int(first[1]), proof, note


class WitnessService:
    """A witness's add-checkpoint over its state folder (`veilwatch witness init`) and the logs it knows."""

    def __init__(self, state_dir: Path, log_keys: Sequence[Verifier], clock: Callable[[], float] = time.time) -> None:
        self._state_dir = state_dir
        self._cosigner, self._state = load_witness(state_dir)
        self._logs: Mapping[str, Verifier] = {key.name: key for key in log_keys}
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def state(self) -> WitnessState:
        """The last checkpoint cosigned per log key."""
        return self._state

    def add_checkpoint(self, body: str) -> Answer:
        """Answer one add-checkpoint request."""
        try:
            old, proof, note = _parse_body(body)
            origin = Note.parse(note).text.split("\n", 1)[0]
        except (ValueError, NoteError) as exc:
            return Answer(400, f"malformed request: {exc}\n")
        log_key = self._logs.get(origin)
        if log_key is None:
            return Answer(404, "unknown log\n")
        try:
            checkpoint = open_checkpoint(note, log_key).checkpoint
        except NoteError as exc:
            return Answer(403, f"the checkpoint is not signed by the log: {exc}\n")
        if old > checkpoint.size:
            return Answer(400, "the old size is above the checkpoint's\n")
        with self._lock:  # the check and the update are one step
            return self._cosign(log_key, old, proof, checkpoint)

    def _cosign(self, log_key: Verifier, old: int, proof: list[bytes], checkpoint: Checkpoint) -> Answer:
        previous = self._state.logs.get(log_key.vkey)
        known = previous.size if previous is not None else 0
        if old != known:
            return Answer(409, f"{known}\n", SIZE_TYPE)
        if previous is not None and old == checkpoint.size and previous.root != checkpoint.root:
            return Answer(409, "split view: another root for the same size\n")
        if previous is not None and old < checkpoint.size:
            try:
                verify_consistency(old, checkpoint.size, proof, previous.root, checkpoint.root)
            except ProofError as exc:
                return Answer(422, f"the consistency proof does not verify: {exc}\n")
        elif proof:
            return Answer(422, "a proof from the empty tree or to the same tree is empty\n")
        signature = self._cosigner.cosign(checkpoint.text, int(self._clock()))
        state = self._state.with_checkpoint(log_key, checkpoint)
        save_state(self._state_dir, state)  # persisted before answering
        self._state = state
        return Answer(200, signature.line)


@dataclass
class WitnessEndpoint:
    """A witness the log asks: its key and submission URL prefix, and the size it last cosigned (as far as known)."""

    key: Verifier
    url: str
    known_size: int = 0


def request_cosignature(endpoint: WitnessEndpoint, note: str, proofs: Callable[[int], list[bytes]]) -> str:
    """Ask one witness to cosign `note` (the log's signed checkpoint); its cosignature lines. Raises AuditError."""
    size = Checkpoint.parse(Note.parse(note).text).size
    url = endpoint.url.rstrip("/") + "/add-checkpoint"
    for _ in range(2):  # a 409 tells the size the witness has: then once more from there
        old = min(endpoint.known_size, size)
        body = add_checkpoint_body(old, proofs(old) if old else [], note)
        try:
            answer = httpx.post(url, content=body.encode(), timeout=10.0)
        except httpx.HTTPError as exc:
            raise AuditError(f"cannot reach witness {endpoint.key.name} at {url}: {exc}") from exc
        if answer.status_code == 200:
            endpoint.known_size = size
            return answer.text
        if answer.status_code == 409 and answer.headers.get("content-type", "").startswith(SIZE_TYPE):
            endpoint.known_size = _size(answer.text, endpoint)
            if endpoint.known_size > size:
                break
            continue
        raise AuditError(f"witness {endpoint.key.name} refused: HTTP {answer.status_code}: {answer.text.strip()[:200]}")
    raise AuditError(f"witness {endpoint.key.name} cosigned size {endpoint.known_size}: this log cannot extend it")


def _size(text: str, endpoint: WitnessEndpoint) -> int:
    if not text.endswith("\n") or not text[:-1].isdigit():
        raise AuditError(f"witness {endpoint.key.name}: malformed size in a 409 answer")
    return int(text[:-1])


def collect_cosignatures(log: AuditLog, endpoints: Sequence[WitnessEndpoint]) -> tuple[list[str], list[str]]:
    """Ask every witness to cosign the log's latest checkpoint and store what verifies; (accepted, failures)."""
    note = log.checkpoint()
    size = Checkpoint.parse(Note.parse(note).text).size
    lines, failures = [], []
    for endpoint in endpoints:
        try:
            lines.append(request_cosignature(endpoint, note, lambda old: log.consistency(old, size)))
        except AuditError as exc:
            failures.append(exc.one_line())
    if not lines:
        return [], failures
    keys = [endpoint.key.vkey for endpoint in endpoints]
    try:
        accepted = log.add_cosignature(note + "".join(lines), keys)
    except AuditError as exc:  # LogVerificationError included: a witness answered with a bad signature
        return [], [*failures, exc.one_line()]
    return list(accepted), failures


class Witnessing:
    """A thread that asks the log's witnesses to cosign its latest checkpoint every `interval_s` seconds."""

    def __init__(self, log: AuditLog, endpoints: Sequence[WitnessEndpoint], interval_s: float) -> None:
        self._log = log
        self._endpoints = list(endpoints)
        self._interval = max(1.0, interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witnessing", daemon=True)

    def start(self) -> None:
        """Start asking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop asking (waits for a round under way)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def _run(self) -> None:
        while True:
            try:
                _, failures = collect_cosignatures(self._log, self._endpoints)
            except AuditError as exc:
                failures = [exc.one_line()]
            for failure in failures:
                _logger.warning("witnessing: %s", failure)
            if self._stop.wait(self._interval):
                return
