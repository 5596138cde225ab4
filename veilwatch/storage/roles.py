"""Who may do what in the monitoring room."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role. The server decides what each may do; storage only keeps it."""

    VISITOR = "visitor"  # watches veiled live video
    OPERATOR = "operator"  # also steers cameras
    AUDITOR = "auditor"  # reads the action log and recordings
    ADMIN = "admin"  # manages users
