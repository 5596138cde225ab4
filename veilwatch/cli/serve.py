"""`veilwatch serve` and `veilwatch users`: run the monitoring room and manage who may enter."""

from __future__ import annotations

import os
import shlex
import socket
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from veilwatch.config import CameraConfig, ServeConfig, ServerConfig, VaultConfig, load_config
from veilwatch.errors import ConfigError

if TYPE_CHECKING:
    from veilwatch.room.room import Room

DEMO_CAMERAS = (
    ("hall", "demo:walkers?seed=1&people=4", "Exhibition hall, east wall", "Demo: visitors crossing the hall"),
    ("entrance", "demo:walkers?seed=2&people=3", "Main entrance", "Demo: people arriving"),
)


DEMO_HOLDERS = ("ana", "ben", "chi")
DEMO_K = 2
DEMO_DATA_DIR = Path("veilwatch-demo")  # in the working folder; git ignores it
DEMO_VAULT_DAYS = 30  # the demo vault is made afresh when fewer than DEMO_RENEW_DAYS of them remain
DEMO_RENEW_DAYS = 2
# The demo records two synthetic cameras: about 4 GB an hour unbounded. A day, at most 500 MB each.
DEMO_RETENTION_DAYS = 1.0
DEMO_RETENTION_MB = 500


def demo_config(data_dir: Path, host: str, port: int, vault_file: Path | None = None) -> ServeConfig:
    """Two synthetic cameras of faces walking through a scene: works offline, on any machine."""
    cameras = [
        CameraConfig(
            name=name,
            source=source,
            location=location,
            purpose=purpose,
            retention_days=DEMO_RETENTION_DAYS,
            retention_mb=DEMO_RETENTION_MB,
        )
        for name, source, location, purpose in DEMO_CAMERAS
    ]
    return ServeConfig(
        server=ServerConfig(host=host, port=port, data_dir=data_dir),
        vault=VaultConfig(public_file=vault_file),
        cameras=cameras,
    )


def demo_passphrase(holder: str) -> str:
    """The demo key holders' passphrases: printed on purpose, because this is a demo."""
    return f"demo passphrase of {holder}"


def demo_vault(folder: Path, today: date | None = None) -> Path:
    """A 2-of-3 demo vault: vault.json and the share files in `folder`, made afresh when missing or expiring."""
    from veilwatch.media.atomic import atomic_output
    from veilwatch.vault.bundle import HolderSpec, create_vault

    today = today or datetime.now(UTC).date()
    public_file = folder / "vault.json"
    if public_file.exists() and not _demo_vault_expiring(folder, today):
        return public_file
    holders = [HolderSpec(name, demo_passphrase(name)) for name in DEMO_HOLDERS]
    vault, bundles = create_vault(holders, DEMO_K, today, days=DEMO_VAULT_DAYS)
    folder.mkdir(parents=True, exist_ok=True)
    for name, bundle in zip(DEMO_HOLDERS, bundles, strict=True):
        with atomic_output(folder / f"{name}.share", overwrite=True) as tmp:
            tmp.write_bytes(bundle)
    with atomic_output(public_file, overwrite=True) as tmp:
        tmp.write_bytes(vault.to_json())
    return public_file


def _demo_vault_expiring(folder: Path, today: date) -> bool:
    """Whether the demo vault's keys run out within DEMO_RENEW_DAYS (or its share files cannot be read)."""
    from veilwatch.errors import VeilwatchError
    from veilwatch.vault.bundle import read_bundle_info

    try:
        info = read_bundle_info((folder / f"{DEMO_HOLDERS[0]}.share").read_bytes())
    except (OSError, VeilwatchError, ValueError):
        return True
    return date.fromisoformat(info.last_day) < today + timedelta(days=DEMO_RENEW_DAYS)


def resolve_config(config: Path | None, demo: bool, host: str | None, port: int | None) -> ServeConfig:
    """The config to run: a file, the demo, with command-line overrides of host and port (creates no file)."""
    if demo and config is not None:
        raise ConfigError("--demo and --config exclude each other")
    if demo:
        loaded = demo_config(DEMO_DATA_DIR, "127.0.0.1", 8470, DEMO_DATA_DIR / "demo-vault" / "vault.json")
    elif config is not None:
        loaded = load_config(config)
    else:
        raise ConfigError("give --config FILE, or --demo to try veilwatch with synthetic cameras")
    server = loaded.server.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    return loaded.model_copy(update={"server": server})


def prepare_demo(config: ServeConfig) -> None:
    """Make (or renew) the demo vault the demo config names; call once the config has been accepted."""
    if config.vault.public_file is not None:
        demo_vault(config.vault.public_file.parent)


def check_exposure(server: ServerConfig) -> None:
    """Refuse to serve beyond this machine in plain HTTP unless a TLS proxy is declared, or on every address unnamed."""
    if not (server.is_loopback() or server.tls or server.behind_tls_proxy):
        raise ConfigError(
            f"refusing to listen on {server.host} without TLS: set tls_cert/tls_key, or declare "
            "behind_tls_proxy = true if a TLS-terminating proxy sits in front"
        )
    if server.is_wildcard() and not server.allowed_hosts:
        raise ConfigError(
            f"listening on {server.host} (every address): set server.allowed_hosts to the host names "
            "clients reach this server by (requests naming any other host are refused)"
        )


def check_tls_files(server: ServerConfig) -> None:
    """Load the TLS certificate and key once before anything starts: a missing or bad file is one clear line."""
    if server.tls_cert is None or server.tls_key is None:
        return
    import ssl

    for key, path in (("tls_cert", server.tls_cert), ("tls_key", server.tls_key)):
        if not path.is_file():
            raise ConfigError(f"server.{key}: no such file: {path}")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(server.tls_cert, server.tls_key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"cannot load tls_cert/tls_key ({server.tls_cert}, {server.tls_key}): {reason}") from None


def run_server(config: ServeConfig, *, demo: bool = False) -> int:
    """Check the config, take the port, then make the demo's files and start the services; serve until interrupted.

    The order matters: a refused config or a port held by another instance leaves no file behind
    and prints no set-up link (the link would be the other instance's to follow, not ours).
    """
    import uvicorn

    from veilwatch.room.room import open_room
    from veilwatch.server.app import create_app

    check_exposure(config.server)
    check_tls_files(config.server)
    # Recordings, sealed faces, exports and the index: readable by this server's user alone.
    os.umask(0o077)
    listener = bind_listener(config.server)
    try:
        if demo:
            prepare_demo(config)
        room = open_room(config)
    except BaseException:
        listener.close()
        raise
    try:
        _announce(config, room, listener.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(room),
                ssl_certfile=str(config.server.tls_cert) if config.server.tls_cert else None,
                ssl_keyfile=str(config.server.tls_key) if config.server.tls_key else None,
                log_level="warning",
                access_log=False,
            )
        )
        server.run(sockets=[listener])
    finally:
        room.close()
        listener.close()
    return 0


def bind_listener(server: ServerConfig) -> socket.socket:
    """The listening socket of the monitoring room, bound now (ConfigError when the address is taken)."""
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    try:
        return socket.create_server((server.host, server.port), family=family, backlog=128)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {server.host}:{server.port} ({exc.strerror or exc}); "
            "is another veilwatch serving there? Choose another --port"
        ) from exc


def users_command(config: ServeConfig) -> str:
    """The exact command that adds an administrator to this server's data folder, from any folder."""
    script = Path(sys.executable).parent / "veilwatch"
    program = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m veilwatch.cli.app"
    data_dir = shlex.quote(str(config.server.data_dir.resolve()))
    return f"{program} users add NAME --role admin --data-dir {data_dir}"


def _announce(config: ServeConfig, room: Room, port: int) -> None:
    """Where the room is, how to create the first administrator, and the demo vault's passphrases."""

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    scheme = "https" if config.server.tls else "http"
    base = f"{scheme}://{config.server.host}:{port}"
    if (token := room.setup.token) is not None:
        say(f"No users yet. Create the first administrator at {base}/setup?token={token}")
        say(f"(or: {users_command(config)})")
    cameras = len(config.cameras)
    say(f"veilwatch monitoring room on {base}/ ({cameras} camera{'s' * (cameras != 1)})")
    say(f"transparency page (public): {base}/transparency")
    if room.vault is not None and config.vault.public_file is not None:
        folder = config.vault.public_file.parent
        if (folder / f"{DEMO_HOLDERS[0]}.share").exists():
            passphrases = ", ".join(f"{name}: '{demo_passphrase(name)}'" for name in DEMO_HOLDERS)
            say(
                f"demo key vault ({DEMO_K} of {len(DEMO_HOLDERS)}): share files in {folder}/, "
                f"passphrases {passphrases}; unmask at {base}/unmask"
            )
