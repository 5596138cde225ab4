"""`veilwatch serve` configuration and command line: validation, exposure rules, user management."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from veilwatch.audit.log import AuditLog
from veilwatch.cli.serve import check_exposure, demo_config, resolve_config
from veilwatch.config import AuditConfig, ServerConfig, load_config, parse_config
from veilwatch.errors import ConfigError
from veilwatch.storage.db import Database
from veilwatch.storage.unmask_requests import UnmaskStore

GOOD = """
[server]
port = 8999
data_dir = "data"

[[cameras]]
name = "lobby"
source = "rtsp://user:secret@10.0.0.5/stream1"
location = "Hall"
purpose = "Safety"
"""


def test_a_good_config_loads_and_hides_credentials(tmp_path: Path) -> None:
    path = tmp_path / "room.toml"
    path.write_text(GOOD)
    config = load_config(path)
    camera = config.cameras[0]
    assert config.server.port == 8999 and camera.name == "lobby"
    assert "secret" not in camera.display_source and "secret" not in repr(config.server)
    assert camera.viewers == ["visitor", "operator", "auditor"]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"server": {"prot": 1}}, "server.prot: unknown key"),
        ({"cameras": [{"name": "a", "source": "demo:walkers", "colour": 1}]}, "cameras.0.colour: unknown key"),
        ({"cameras": [{"name": "a", "source": "exec:rm -rf /"}]}, "cameras.0.source"),
        ({"cameras": [{"name": "a", "source": "pipe:0"}]}, "cameras.0.source"),
        ({"cameras": [{"name": "Bad Name", "source": "demo:walkers"}]}, "cameras.0.name"),
        ({"cameras": [{"name": "a", "source": "demo:walkers", "viewers": ["boss"]}]}, "cameras.0.viewers.0"),
        ({"server": {"tls_cert": "c.pem"}}, "server: "),
        ({"server": {"record_preset": "placebo-ish"}}, "server.record_preset"),
        ({"cameras": [{"name": "a", "source": "demo:walkers"}, {"name": "a", "source": "demo:walkers"}]}, "unique"),
    ],
)
def test_bad_configs_name_the_key(data: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, origin="room.toml")
    line = caught.value.one_line()
    assert where in line and line.startswith("room.toml: ") and "\n" not in line


def test_unreadable_configs_give_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(broken)


def test_loopback_by_default_and_no_plain_http_beyond_it(tmp_path: Path) -> None:
    check_exposure(ServerConfig())
    check_exposure(ServerConfig(host="::1"))
    with pytest.raises(ConfigError, match="without TLS"):
        check_exposure(ServerConfig(host="0.0.0.0"))
    check_exposure(ServerConfig(host="0.0.0.0", behind_tls_proxy=True, allowed_hosts=["cameras.example.org"]))
    with pytest.raises(ConfigError, match="allowed_hosts"):
        check_exposure(ServerConfig(host="0.0.0.0", behind_tls_proxy=True))
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    check_exposure(ServerConfig(host="192.0.2.7", tls_cert=cert, tls_key=key))


def test_demo_and_overrides() -> None:
    demo = demo_config(Path("d"), "127.0.0.1", 8470)
    assert [c.source.startswith("demo:") for c in demo.cameras] == [True, True]
    resolved = resolve_config(None, True, "127.0.0.1", 9001)
    assert resolved.server.port == 9001
    with pytest.raises(ConfigError):
        resolve_config(None, False, None, None)


def _veilwatch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "veilwatch.cli.app", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_users_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    added = _veilwatch(
        "users",
        "add",
        "alice",
        "--role",
        "operator",
        "--password-stdin",
        "--data-dir",
        data,
        stdin="a long enough password\n",
    )
    assert added.returncode == 0, added.stderr
    weak = _veilwatch("users", "add", "bob", "--password-stdin", "--data-dir", data, stdin="short\n")
    assert weak.returncode == 2 and weak.stderr.count("\n") == 1 and "password" in weak.stderr
    listed = _veilwatch("users", "list", "--data-dir", data)
    assert "alice" in listed.stdout and "operator" in listed.stdout and "bob" not in listed.stdout
    assert _veilwatch("users", "role", "alice", "admin", "--data-dir", data).returncode == 0
    missing = _veilwatch("users", "remove", "nobody", "--data-dir", data)
    assert missing.returncode != 0 and missing.stderr.count("\n") == 1
    assert _veilwatch("vault", "revoke", "ben", "--data-dir", data).returncode == 0
    # Each change is in the tamper-evident log, refused ones are not.
    with Database.open(Path(data) / "veilwatch.sqlite3") as db:
        audit = AuditLog.open(db, Path(data) / "keys", AuditConfig().log_origin)
        records = [json.loads(entry) for entry in audit.entries(0, audit.size())]
        assert UnmaskStore(db).revoked() == {"ben"}
    changes = [(r["kind"], r["details"].get("user") or r["details"].get("holder")) for r in records]
    assert changes == [("user.create", "alice"), ("user.role", "alice"), ("vault.revoke", "ben")]


def test_serve_refuses_a_public_bind_without_tls(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text(GOOD.replace("port = 8999", 'host = "0.0.0.0"\nport = 8999'))
    result = _veilwatch("serve", "--config", str(config))
    assert result.returncode == 2 and "without TLS" in result.stderr and "Traceback" not in result.stderr


def test_demo_config_creates_no_file_and_bounds_its_recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    resolved = resolve_config(None, True, None, None)
    assert list(tmp_path.iterdir()) == []
    assert all(c.retention_days <= 1 and c.retention_mb <= 500 for c in resolved.cameras)


def test_the_demo_vault_is_made_then_renewed_before_it_expires(tmp_path: Path) -> None:
    from datetime import date

    from veilwatch.cli.serve import demo_vault
    from veilwatch.vault.bundle import read_bundle_info

    def last_day() -> str:
        return read_bundle_info((tmp_path / "ana.share").read_bytes()).last_day

    demo_vault(tmp_path, today=date(2030, 1, 1))
    first = last_day()
    demo_vault(tmp_path, today=date(2030, 1, 10))
    assert last_day() == first  # still valid: kept
    demo_vault(tmp_path, today=date(2030, 3, 1))
    assert last_day() > "2030-03-02"


def test_the_printed_users_command_names_this_install_and_the_data_folder(tmp_path: Path) -> None:
    from veilwatch.cli.serve import users_command

    command = users_command(demo_config(Path("veilwatch-demo"), "127.0.0.1", 8470))
    assert command.startswith(str(Path(sys.executable).parent))
    assert command.endswith(f"--data-dir {Path('veilwatch-demo').resolve()}")


def _serve_demo(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "veilwatch.cli.app", "serve", "--demo", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60, check=False)


def test_a_public_demo_is_refused_before_any_file_is_written(tmp_path: Path) -> None:
    result = _serve_demo(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2, result.stderr
    assert "without TLS" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_second_demo_on_a_taken_port_prints_no_link_and_writes_nothing(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _serve_demo(tmp_path, "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert "cannot listen" in result.stderr
    assert "setup?token" not in result.stderr
    assert list(tmp_path.iterdir()) == []
