"""`veilwatch unmask ask | hand-in | fetch`: the unmask desk of a running server, from a terminal.

Staff log in with their own name and password (asked, or read from standard input); key holders
approve offline with `veilwatch vault approve` and someone hands the approval files in.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from veilwatch.errors import AuditError, InputError, OutputError, VaultError
from veilwatch.media.atomic import atomic_output

TIMEOUT_S = 120.0  # executing an unmask decodes and encodes video on the server


def parse_time(text: str) -> float:
    """UTC seconds from Unix seconds or an ISO 8601 time (a time without zone is local time)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise InputError(f"not a time: {text!r} (use ISO 8601, e.g. 2026-11-30T14:05:00Z, or Unix seconds)") from exc


class DeskClient:
    """A logged-in session with a server's unmask desk."""

    def __init__(self, server: str, user: str, password: str) -> None:
        self._client = httpx.Client(base_url=server.rstrip("/"), timeout=TIMEOUT_S)
        try:
            answer = self._client.post("/api/login", json={"name": user, "password": password})
        except httpx.HTTPError as exc:
            self._client.close()
            raise InputError(f"cannot reach {server}: {exc}") from exc
        self._check(answer)
        self._client.headers["X-CSRF-Token"] = answer.json()["csrf"]

    def ask(
        self, camera: str, start: float, end: float, reason: str, region: list[int] | None = None
    ) -> dict[str, Any]:
        """Make an unmask request; the server's description of it."""
        body = {"camera": camera, "start": start, "end": end, "reason": reason, "region": region}
        return dict(self._check(self._client.post("/api/unmask", json=body)).json())

    def request_file(self, request_id: str) -> bytes:
        """The canonical request that key holders approve."""
        return self._check(self._client.get(f"/api/unmask/{request_id}/request.json")).content

    def hand_in(self, request_id: str, approval: bytes) -> dict[str, Any]:
        """Hand one approval in; the request as it now stands."""
        answer = self._client.post(
            f"/api/unmask/{request_id}/approvals", content=approval, headers={"Content-Type": "application/json"}
        )
        return dict(self._check(answer).json())

    def clip(self, request_id: str) -> bytes:
        """The unmasked clip (only for whoever asked, while it lasts)."""
        return self._check(self._client.get(f"/api/unmask/{request_id}/clip.mp4")).content

    def close(self) -> None:
        """Log out and close the connection."""
        with contextlib.suppress(httpx.HTTPError):
            self._client.post("/api/logout")
        self._client.close()

    @staticmethod
    def _check(answer: httpx.Response) -> httpx.Response:
        if answer.is_success:
            return answer
        try:
            detail = answer.json().get("detail", answer.reason_phrase)
        except ValueError:
            detail = answer.reason_phrase
        raise VaultError(f"the server refused ({answer.status_code}): {detail}")


def _password(password_stdin: bool, user: str) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(f"password for {user}: ")


def parse_region(text: str | None) -> list[int] | None:
    """x0,y0,x1,y1 in pixels, or None."""
    if not text:
        return None
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise InputError(f"not a region: {text!r} (use x0,y0,x1,y1 in pixels)")
    return values


def ask(
    server: str,
    user: str,
    password_stdin: bool,
    camera: str,
    start: str,
    end: str,
    reason: str,
    out: Path,
    region: str | None = None,
) -> int:
    """Ask for an unmask and save the request file for the key holders."""
    area = parse_region(region)
    client = DeskClient(server, user, _password(password_stdin, user))
    try:
        made = client.ask(camera, parse_time(start), parse_time(end), reason, area)
        _write(out, client.request_file(made["id"]))
    finally:
        client.close()
    print(f"request {made['id']}: saved to {out}; each key holder runs `veilwatch vault approve --request {out} …`")
    return 0


def hand_in(server: str, user: str, password_stdin: bool, request_id: str, approvals: list[Path]) -> int:
    """Hand key holders' approval files in; with K of them the server unmasks."""
    client = DeskClient(server, user, _password(password_stdin, user))
    try:
        status: dict[str, Any] = {}
        for path in approvals:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read the approval: {exc.strerror or exc}", path=str(path)) from exc
            status = client.hand_in(request_id, data)
            print(f"{path}: accepted ({len(status['approvals'])} approval(s), request {status['status']})")
    finally:
        client.close()
    return 0


def fetch(server: str, user: str, password_stdin: bool, request_id: str, out: Path) -> int:
    """Save the unmasked clip (yours, while it lasts)."""
    client = DeskClient(server, user, _password(password_stdin, user))
    try:
        data = client.clip(request_id)
    finally:
        client.close()
    _write_private(out, data)
    print(f"unmasked clip saved to {out} ({len(data)} bytes, readable by you only); it is raw footage: keep it safe")
    return 0


def _write_private(path: Path, data: bytes) -> None:
    """Write raw footage readable by its owner only (mode 0600 from the first byte), whole or not at all."""
    from veilwatch.audit.files import write_private

    exists = OutputError("exists; an unmasked clip is never overwritten", path=str(path))
    if path.exists():
        raise exists
    try:
        written = write_private(path, data, replace=False)
    except AuditError as exc:
        raise OutputError(exc.one_line()) from exc
    if not written:
        raise exists


def _write(path: Path, data: bytes) -> None:
    try:
        with atomic_output(path, overwrite=False) as tmp:
            tmp.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(path)) from exc
