"""The log's public HTTP API as a client, for `veilwatch audit verify --server` and `veilwatch witness`.

The server is not trusted: whatever it answers is checked by the caller (signatures, proofs,
rebuilt roots). Here, answers are only checked for shape, and every failure is one `AuditError`
line naming the server.
"""

from __future__ import annotations

import base64
import binascii
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from veilwatch.audit.note import Checkpoint, Note, NoteError, Verifier, open_note
from veilwatch.audit.verify import LogExport
from veilwatch.errors import AuditError

__all__ = ["LogClient"]

PAGE = 1000  # the server's largest page of entries
MAX_NOTE_BYTES = 64 * 1024


class LogClient:
    """Talks to one server's /api/log routes; use as a context manager."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuditError(f"not an http(s) server URL: {base_url[:100]!r}")
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def __enter__(self) -> LogClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def checkpoint(self) -> str:
        """The log's latest checkpoint note, with its cosignatures (unverified)."""
        response = self._request("GET", "/api/log/checkpoint")
        if len(response.content) > MAX_NOTE_BYTES:
            raise AuditError(f"{self.base_url}: the checkpoint is implausibly large")
        return response.text

    def entries(self, start: int, end: int) -> tuple[list[bytes], list[bytes]]:
        """Entries [start, end) and the leaf hashes the log stored for them (at most one page)."""
        body = self._json("GET", "/api/log/entries", params={"start": start, "end": end})
        return _b64_list(body.get("entries"), self.base_url), _b64_list(body.get("hashes"), self.base_url)

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The log's consistency proof between two tree sizes (unverified)."""
        body = self._json("GET", "/api/log/proof/consistency", params={"first": first, "second": second})
        return _b64_list(body.get("proof"), self.base_url)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The log's inclusion proof of one entry (unverified)."""
        body = self._json("GET", "/api/log/proof/inclusion", params={"index": index, "size": size})
        return _b64_list(body.get("proof"), self.base_url)

    def post_cosignature(self, note: str) -> list[str]:
        """Hand a cosigned checkpoint to the log; the witnesses it accepted."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        body = self._json("POST", "/api/log/cosignature", content=note.encode(), headers=headers)
        accepted = body.get("accepted")
        if not isinstance(accepted, list) or not all(isinstance(a, str) for a in accepted):
            raise AuditError(f"{self.base_url}: malformed answer to a cosignature")
        return accepted

    def export(self, verifier: Verifier | None = None) -> LogExport:
        """The latest checkpoint and every entry up to its size, fetched page by page.

        With the log's `verifier`, the checkpoint's signature is checked first, so that a hostile
        server cannot make us fetch pages for a tree size it never signed.
        """
        note = self.checkpoint()
        try:
            text = open_note(note, [verifier]).text if verifier is not None else Note.parse(note).text
            checkpoint = Checkpoint.parse(text)
        except NoteError as exc:
            raise AuditError(f"{self.base_url}: the checkpoint is malformed or not signed by the log: {exc}") from exc
        entries: list[bytes] = []
        hashes: list[bytes] = []
        while len(entries) < checkpoint.size:
            start = len(entries)
            page, page_hashes = self.entries(start, min(checkpoint.size, start + PAGE))
            if not page:
                break  # the server stops short: verification will say the rest is missing
            entries.extend(page)
            hashes.extend(page_hashes)
        return LogExport(checkpoint.origin, note, tuple(entries), tuple(hashes))

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AuditError(f"cannot reach {self.base_url}: {exc}") from exc
        if response.status_code != 200:
            raise AuditError(f"{self.base_url}{path}: HTTP {response.status_code}: {_detail(response)}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise AuditError(f"{self.base_url}{path}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise AuditError(f"{self.base_url}{path}: malformed answer")
        return body


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return " ".join(str(detail or response.reason_phrase).split())[:200]


def _b64_list(values: Any, where: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuditError(f"{where}: malformed answer (a list of base64 strings expected)")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except binascii.Error as exc:
        raise AuditError(f"{where}: malformed base64 in the answer") from exc
