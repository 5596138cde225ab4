"""`veilwatch serve` and `veilwatch users`: run the monitoring room and manage who may enter."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from veilwatch.config import CameraConfig, ServeConfig, ServerConfig, VaultConfig, load_config
from veilwatch.errors import ConfigError

DEMO_CAMERAS = (
    ("hall", "demo:walkers?seed=1&people=4", "Exhibition hall, east wall", "Demo: visitors crossing the hall"),
    ("entrance", "demo:walkers?seed=2&people=3", "Main entrance", "Demo: people arriving"),
)


DEMO_HOLDERS = ("ana", "ben", "chi")
DEMO_K = 2


def demo_config(data_dir: Path, host: str, port: int, vault_file: Path | None = None) -> ServeConfig:
    """Two synthetic cameras of faces walking through a scene: works offline, on any machine."""
    cameras = [
        CameraConfig(name=name, source=source, location=location, purpose=purpose, retention_days=1)
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


def demo_vault(folder: Path) -> Path:
    """A 2-of-3 demo vault (made once): vault.json and the holders' share files in `folder`."""
    from datetime import UTC, datetime

    from veilwatch.media.atomic import atomic_output
    from veilwatch.vault.bundle import HolderSpec, create_vault

    public_file = folder / "vault.json"
    if public_file.exists():
        return public_file
    holders = [HolderSpec(name, demo_passphrase(name)) for name in DEMO_HOLDERS]
    vault, bundles = create_vault(holders, DEMO_K, datetime.now(UTC).date(), days=30)
    folder.mkdir(parents=True, exist_ok=True)
    for name, bundle in zip(DEMO_HOLDERS, bundles, strict=True):
        with atomic_output(folder / f"{name}.share", overwrite=True) as tmp:
            tmp.write_bytes(bundle)
    with atomic_output(public_file, overwrite=True) as tmp:
        tmp.write_bytes(vault.to_json())
    return public_file


def resolve_config(config: Path | None, demo: bool, host: str | None, port: int | None) -> ServeConfig:
    """The config to run: a file, the demo, with command-line overrides of host and port."""
    if demo and config is not None:
        raise ConfigError("--demo and --config exclude each other")
    if demo:
        data_dir = Path("veilwatch-demo")
        loaded = demo_config(data_dir, "127.0.0.1", 8470, demo_vault(data_dir / "demo-vault"))
    elif config is not None:
        loaded = load_config(config)
    else:
        raise ConfigError("give --config FILE, or --demo to try veilwatch with synthetic cameras")
    server = loaded.server.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    return loaded.model_copy(update={"server": server})


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


def run_server(config: ServeConfig) -> int:
    """Start the services and serve until interrupted."""
    import uvicorn

    from veilwatch.server.app import create_app
    from veilwatch.server.services import Services

    check_exposure(config.server)
    check_tls_files(config.server)
    # Recordings, sealed faces, exports and the index: readable by this server's user alone.
    os.umask(0o077)
    services = Services.start(config)
    try:
        scheme = "https" if config.server.tls else "http"
        base = f"{scheme}://{config.server.host}:{config.server.port}"
        if services.setup_token:
            print(
                f"No users yet. Create the first administrator at {base}/setup?token={services.setup_token}\n"
                "(or: veilwatch users add NAME --role admin)",
                file=sys.stderr,
                flush=True,
            )
        print(f"veilwatch monitoring room on {base}/ ({len(config.cameras)} cameras)", file=sys.stderr, flush=True)
        print(f"transparency page (public): {base}/transparency", file=sys.stderr, flush=True)
        if services.vault is not None and config.vault.public_file is not None:
            folder = config.vault.public_file.parent
            if (folder / f"{DEMO_HOLDERS[0]}.share").exists():
                print(
                    f"demo key vault ({DEMO_K} of {len(DEMO_HOLDERS)}): share files in {folder}/, passphrases "
                    + ", ".join(f"{name}: '{demo_passphrase(name)}'" for name in DEMO_HOLDERS)
                    + f"; unmask at {base}/unmask",
                    file=sys.stderr,
                    flush=True,
                )
        uvicorn.run(
            create_app(services),
            host=config.server.host,
            port=config.server.port,
            ssl_certfile=str(config.server.tls_cert) if config.server.tls_cert else None,
            ssl_keyfile=str(config.server.tls_key) if config.server.tls_key else None,
            log_level="warning",
            access_log=False,
        )
    finally:
        services.stop()
    return 0
