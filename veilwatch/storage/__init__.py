"""Storage of the monitoring room: users, login sessions, the action log and recorded video.

Everything lives in one data folder: the SQLite database (opened with `Database.open`, which
migrates it) and `recordings/`. Each store is a small object over one `Database`; build them
once at start-up and pass them where needed. Only `recorder` imports PyAV, and only when used.
"""

from __future__ import annotations

from veilwatch.access import Role
from veilwatch.storage.actions import ActionKind, ActionLog, ActionRecord
from veilwatch.storage.db import Database
from veilwatch.storage.recorder import SegmentRecorder
from veilwatch.storage.recordings import HealReport, Segment, SegmentIndex
from veilwatch.storage.retention import RetentionPolicy, enforce, free_space
from veilwatch.storage.sessions import ActiveSession, IssuedSession, SessionStore
from veilwatch.storage.users import User, UserStore

__all__ = [
    "ActionKind",
    "ActionLog",
    "ActionRecord",
    "ActiveSession",
    "Database",
    "HealReport",
    "IssuedSession",
    "RetentionPolicy",
    "Role",
    "Segment",
    "SegmentIndex",
    "SegmentRecorder",
    "SessionStore",
    "User",
    "UserStore",
    "enforce",
    "free_space",
]
