"""`open_room`: a start that fails at any step leaves no open database, writer thread, camera or file behind.

Counting threads and file descriptors before and after (as datasette's test_fd_leak does) shows
what a failed start would otherwise leak; every step's failure is a real one (a damaged file, an
unusable source), not a stand-in for one of our parts.
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from veilwatch.config import CameraConfig, ServeConfig, ServerConfig, VaultConfig
from veilwatch.errors import VeilwatchError
from veilwatch.pipeline.engine import Engine
from veilwatch.room.records import DB_FILE, KEY_DIR
from veilwatch.room.room import open_room
from veilwatch.settings import EngineSettings, LiveSettings
from veilwatch.storage.actions import ActionKind

ROOT = Path(__file__).resolve().parent.parent / "veilwatch"
RECORDING_CALLS = {"record": 0, "record_at": 1, "record_public": 0, "_record": 0}  # call name: where its kind is


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _ours() -> set[str]:
    """Threads the room starts: the database writer, cameras, recorders, retention."""
    return {t.name for t in threading.enumerate() if t.name.startswith(("veilwatch-db", "record-", "retention"))}


def _config(data: Path, *sources: str, vault: Path | None = None) -> ServeConfig:
    cameras = [
        CameraConfig(name=f"cam{i}", source=source, live=LiveSettings(width=160, height=120, fps=2))
        for i, source in enumerate(sources)
    ]
    return ServeConfig(server=ServerConfig(data_dir=data), vault=VaultConfig(public_file=vault), cameras=cameras)


def _damage_vault(data: Path) -> ServeConfig:
    (data.parent / "vault.json").write_text("{not a vault")
    return _config(data, "demo:walkers?seed=1&people=1", vault=data.parent / "vault.json")


def _damage_pseudonym_key(data: Path) -> ServeConfig:
    (data / KEY_DIR).mkdir(parents=True)
    (data / KEY_DIR / "pseudonyms.key").write_text("not hex\n")
    return _config(data, "demo:walkers?seed=1&people=1")


def _damage_database(data: Path) -> ServeConfig:
    data.mkdir(parents=True)
    (data / DB_FILE).write_bytes(b"this is not an SQLite database" * 100)  # its migration fails
    return _config(data, "demo:walkers?seed=1&people=1")


def _bad_second_camera(data: Path) -> ServeConfig:
    # The first camera starts (pipeline, recorder) before the second one's source, gone since the
    # config was read, is refused.
    video = data.parent / "gone.mp4"
    video.write_bytes(b"")
    config = _config(data, "demo:walkers?seed=1&people=1", str(video))
    video.unlink()
    return config


@pytest.mark.parametrize(
    ("damage", "step"),
    [
        (_damage_vault, "not a vault public file"),
        (_damage_pseudonym_key, "cannot read the pseudonym key"),
        (_damage_database, "cannot open the database"),
        (_bad_second_camera, "gone.mp4"),
    ],
    ids=["vault", "pseudonym-key", "database", "second-camera"],
)
def test_a_failed_start_leaks_nothing(
    tmp_path: Path, engine: Engine, damage: Callable[[Path], ServeConfig], step: str
) -> None:
    config = damage(tmp_path / "data")
    threads, fds = _ours(), _open_fds()
    with pytest.raises(VeilwatchError, match=step):
        open_room(config, engine_factory=lambda _: engine)
    assert _ours() == threads
    assert _open_fds() == fds


def test_a_failing_engine_leaves_the_opened_database_closed(tmp_path: Path) -> None:
    def broken(_settings: EngineSettings) -> Engine:
        raise VeilwatchError("the face model cannot be loaded")

    threads, fds = _ours(), _open_fds()
    with pytest.raises(VeilwatchError, match="face model"):
        open_room(_config(tmp_path / "data", "demo:walkers?seed=1&people=1"), engine_factory=broken)
    assert _ours() == threads and _open_fds() == fds


def test_a_room_that_ran_closes_everything_it_opened(tmp_path: Path, engine: Engine) -> None:
    threads, fds = _ours(), _open_fds()
    with open_room(_config(tmp_path / "data", "demo:walkers?seed=1&people=1"), engine_factory=lambda _: engine) as room:
        assert len(room.cameras) == 1 and room.cameras["cam0"].recorder is not None
        assert _ours() > threads
    assert _ours() == threads and _open_fds() == fds
    room.close()  # idempotent


def _recording_calls() -> list[tuple[str, int, ast.expr]]:
    calls = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                where = RECORDING_CALLS.get(node.func.attr)
                if where is not None and len(node.args) > where:
                    calls.append((str(path.relative_to(ROOT)), node.lineno, node.args[where]))
    return calls


def test_every_recorded_action_names_an_action_kind() -> None:
    calls = _recording_calls()
    assert len(calls) > 20
    for where, line, kind in calls:
        named = isinstance(kind, ast.Attribute) and isinstance(kind.value, ast.Name) and kind.value.id == "ActionKind"
        built = isinstance(kind, ast.Call) and isinstance(kind.func, ast.Name) and kind.func.id == "ActionKind"
        variable = isinstance(kind, ast.Name) and kind.id == "kind"  # itself an ActionKind (mypy checks)
        assert named or built or variable, f"{where}:{line}: an action kind that is not an ActionKind"


def test_only_the_recorder_makes_action_records() -> None:
    makers = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ActionRecord":
                makers.add(str(path.relative_to(ROOT)))
    # storage/actions.py reads stored rows back into records; room/actions.py is the recorder.
    assert makers == {"storage/actions.py", "room/actions.py"}


def test_action_kinds_keep_the_texts_already_in_logs() -> None:
    assert str(ActionKind.CONTROL_GRANTED) == "control.granted" and "control.grant" not in set(ActionKind)
    assert {"login", "view.start", "ptz.move", "export", "unmask.execute", "config.load"} <= set(ActionKind)
