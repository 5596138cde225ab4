"""The public surface of veilwatch.storage, and how much importing it costs."""

from __future__ import annotations

import subprocess
import sys

import veilwatch.storage
from tests.helpers import REPO_ROOT


def test_exported_names_are_pinned() -> None:
    assert veilwatch.storage.__all__ == [
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
    for name in veilwatch.storage.__all__:
        assert getattr(veilwatch.storage, name).__doc__


def test_importing_storage_does_not_load_pyav() -> None:
    code = "import sys, veilwatch.storage; print(sorted({'av', 'cv2', 'onnxruntime'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
