"""The action log: canonical bytes that never change, and no secrets or pixels in them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from veilwatch.storage import ActionKind, ActionLog, ActionRecord, Database

AT = 1_700_000_000.123456


def _grant(**details: Any) -> ActionRecord:
    return ActionRecord(
        at=AT, actor="alice", role="operator", kind=ActionKind.CONTROL_GRANTED, camera="gate", details=details
    )


def test_canonical_bytes_are_sorted_compact_versioned_utf8() -> None:
    record = ActionRecord(
        at=AT,
        actor="alice",
        role="operator",
        kind="ptz.move",
        camera="gate",
        details={"z": 1, "a": "Zürich", "m": [True, None]},
    )
    expected = (
        '{"actor":"alice","at_us":1700000000123456,"camera":"gate",'
        '"details":{"a":"Zürich","m":[true,null],"z":1},"kind":"ptz.move","role":"operator","v":1}'
    ).encode()
    assert record.to_canonical_json() == expected
    assert json.loads(expected)["v"] == 1


def test_equal_records_have_equal_bytes_whatever_the_key_order() -> None:
    one = _grant(pan=10, tilt=-5, zoom=2)
    two = _grant(zoom=2, tilt=-5, pan=10)
    assert one.to_canonical_json() == two.to_canonical_json()
    assert one.to_canonical_json() != _grant(pan=11, tilt=-5, zoom=2).to_canonical_json()


def test_a_record_keeps_its_bytes_through_the_database(db: Database) -> None:
    log = ActionLog(db)
    records = [
        _grant(to="bob"),
        ActionRecord(at=AT + 1, actor="system", role="system", kind="login.failed", details={"name": "mallory"}),
        ActionRecord(at=AT + 2, actor="bob", role="visitor", kind=ActionKind.VIEW_START, camera="hall"),
    ]
    ids = [log.record(record) for record in records]
    assert ids == sorted(ids)
    back = log.recent(10)
    assert back == records[::-1]
    assert [r.to_canonical_json() for r in back] == [r.to_canonical_json() for r in records[::-1]]
    assert log.recent(10, camera="gate") == [records[0]]
    assert log.recent(1) == [records[2]]
    assert log.recent(1, kinds=["login.failed", "control.granted"]) == [records[1]]
    assert log.recent(10, kinds=[ActionKind.VIEW_START]) == [records[2]]


def test_the_caller_cannot_change_a_record_after_the_fact() -> None:
    details: dict[str, Any] = {"to": "bob", "steps": [1, 2]}
    record = _grant(**details)
    before = record.to_canonical_json()
    details["steps"].append(3)
    details["to"] = "mallory"
    assert record.to_canonical_json() == before


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"password": "hunter22"}, "secrets and pictures"),
        ({"new_Password": "x"}, "secrets and pictures"),
        ({"csrf_token": "x"}, "secrets and pictures"),
        ({"user": {"password_hash": "x"}}, "secrets and pictures"),
        ({"pixels": [1, 2]}, "secrets and pictures"),
        ({"snapshot": {"image": "..."}}, "secrets and pictures"),
        ({"thumb": "A" * 5000}, "longer than"),
        ({"frame": np.zeros((2, 2, 3), np.uint8)}, "not a JSON value"),
        ({"raw": b"\x89PNG"}, "not a JSON value"),
        ({"speed": 0.5}, "floats are not allowed"),
        ({"n": 2**60}, "beyond"),
        ({"deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "nested too deep"),
    ],
)
def test_secrets_pixels_and_unhashable_values_are_refused(details: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _grant(**details)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"at": float("nan")}, "action time"),
        ({"actor": "not a name"}, "invalid actor"),
        ({"role": "god"}, "invalid role"),
        ({"kind": "PTZ Move"}, "invalid action kind"),
        ({"camera": "../etc"}, "invalid camera"),
    ],
)
def test_invalid_fields_are_refused(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"at": AT, "actor": "alice", "role": "operator", "kind": "ptz.move", "camera": "gate"}
    with pytest.raises(ValueError, match=message):
        ActionRecord(**(base | fields))
