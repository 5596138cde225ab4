"""Canonical JSON for the vault's files and signed records, and strict reading of it.

Canonical means: UTF-8, keys sorted, no spaces, no floats (their text form is not unique), bytes as
standard base64. The same object always gives the same bytes, so they can be hashed and signed.
Reading is strict: unknown or missing keys, wrong types and booleans posing as integers are refused
with one line that names the file kind and the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, NoReturn

from veilwatch.errors import VaultFileError

MAX_PIXEL = 100_000  # a picture coordinate (no camera is that wide): regions are checked against it


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a JSON object (sorted keys, no spaces, no floats)."""
    _reject_floats(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _reject_floats(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("floats have no canonical form; use integers")
    if isinstance(value, Mapping):
        for item in value.values():
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)


def b64e(data: bytes) -> str:
    """Standard base64 text of bytes."""
    return base64.b64encode(data).decode("ascii")


def _a(what: str) -> str:
    return f"an {what}" if what[0] in "aeiou" else f"a {what}"


def _no_floats(text: str) -> NoReturn:
    raise ValueError(f"a number with a fraction or exponent ({text}) is not allowed")


class Fields:
    """The fields of one JSON object read from a file of kind `what` (e.g. "share bundle")."""

    def __init__(self, obj: Mapping[str, Any], what: str) -> None:
        self._obj = obj
        self.what = what

    @classmethod
    def parse(cls, data: bytes, what: str, *, form: str, versions: frozenset[int]) -> Fields:
        """Parse a file's bytes and check its `format` name and `version`."""
        try:
            obj = json.loads(data, parse_float=_no_floats, parse_constant=_no_floats)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VaultFileError(f"not {_a(what)}: {' '.join(str(exc).split())[:120]}") from exc
        except RecursionError:  # arrays nested thousands deep: anyone may send them
            raise VaultFileError(f"not {_a(what)}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise VaultFileError(f"not {_a(what)}: expected a JSON object")
        fields = cls(obj, what)
        if obj.get("format") != form:
            raise VaultFileError(f"not {_a(what)}: format is {str(obj.get('format'))[:60]!r}, expected {form!r}")
        version = fields.integer("version")
        if version not in versions:
            raise VaultFileError(f"{what} version {version} is not supported (this veilwatch reads {sorted(versions)})")
        return fields

    def only(self, *names: str) -> None:
        """Refuse keys other than `names` (and format, version)."""
        extra = set(self._obj) - {*names, "format", "version"}
        if extra:
            self.fail(f"unknown field {sorted(extra)[0]!r}")

    def fail(self, problem: str) -> NoReturn:
        """Raise VaultFileError naming this file kind."""
        raise VaultFileError(f"bad {self.what}: {problem}")

    def _get(self, name: str) -> Any:
        if name not in self._obj:
            self.fail(f"missing field {name!r}")
        return self._obj[name]

    def text(self, name: str) -> str:
        """A text field."""
        value = self._get(name)
        if not isinstance(value, str):
            self.fail(f"{name} must be text")
        return value

    def integer(self, name: str, *, low: int | None = None, high: int | None = None) -> int:
        """An integer field (booleans refused), optionally within [low, high]."""
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"{name} must be an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{name} = {value} is out of range")
        return value

    def blob(self, name: str, *, size: int | None = None) -> bytes:
        """A base64 field, optionally of exactly `size` bytes."""
        return self.decode_b64(self.text(name), name, size=size)

    def decode_b64(self, text: str, name: str, *, size: int | None = None) -> bytes:
        """Strictly decoded base64 text."""
        try:
            value = base64.b64decode(text, validate=True)
        except binascii.Error:
            self.fail(f"{name} is not base64")
        if size is not None and len(value) != size:
            self.fail(f"{name} must be {size} bytes, not {len(value)}")
        return value

    def array(self, name: str) -> list[Any]:
        """A list field."""
        value = self._get(name)
        if not isinstance(value, list):
            self.fail(f"{name} must be a list")
        return value

    def region(self, name: str) -> tuple[int, int, int, int] | None:
        """An optional rectangle [x0, y0, x1, y1] of non-negative integers with x0 < x1, y0 < y1 (null: none)."""
        value = self._get(name)
        if value is None:
            return None
        ok = isinstance(value, list) and len(value) == 4
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_PIXEL for v in value)
        if not ok or not (value[0] < value[2] and value[1] < value[3]):
            self.fail(f"{name} must be null or [x0, y0, x1, y1] with x0 < x1 and y0 < y1, up to {MAX_PIXEL}")
        return (value[0], value[1], value[2], value[3])

    def mapping(self, name: str) -> dict[str, Any]:
        """An object field."""
        value = self._get(name)
        if not isinstance(value, dict):
            self.fail(f"{name} must be an object")
        return value

    def nested(self, name: str) -> Fields:
        """An object field, read with the same strictness."""
        return Fields(self.mapping(name), f"{self.what} ({name})")

    def item(self, obj: Any, where: str) -> Fields:
        """An object inside a list field."""
        if not isinstance(obj, dict):
            self.fail(f"{where} must be an object")
        return Fields(obj, f"{self.what} ({where})")
