"""`veilwatch serve` and `veilwatch users`: run the monitoring room and manage who may enter."""

from __future__ import annotations

import sys
from pathlib import Path

from veilwatch.config import CameraConfig, ServeConfig, ServerConfig, load_config
from veilwatch.errors import ConfigError

DEMO_CAMERAS = (
    ("hall", "demo:walkers?seed=1&people=4", "Exhibition hall, east wall", "Demo: visitors crossing the hall"),
    ("entrance", "demo:walkers?seed=2&people=3", "Main entrance", "Demo: people arriving"),
)


def demo_config(data_dir: Path, host: str, port: int) -> ServeConfig:
    """Two synthetic cameras of faces walking through a scene: works offline, on any machine."""
    cameras = [
        CameraConfig(name=name, source=source, location=location, purpose=purpose, retention_days=1)
        for name, source, location, purpose in DEMO_CAMERAS
    ]
    return ServeConfig(server=ServerConfig(host=host, port=port, data_dir=data_dir), cameras=cameras)


def resolve_config(config: Path | None, demo: bool, host: str | None, port: int | None) -> ServeConfig:
    """The config to run: a file, the demo, with command-line overrides of host and port."""
    if demo and config is not None:
        raise ConfigError("--demo and --config exclude each other")
    if demo:
        loaded = demo_config(Path("veilwatch-demo"), "127.0.0.1", 8470)
    elif config is not None:
        loaded = load_config(config)
    else:
        raise ConfigError("give --config FILE, or --demo to try veilwatch with synthetic cameras")
    server = loaded.server.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    return loaded.model_copy(update={"server": server})


def check_exposure(server: ServerConfig) -> None:
    """Refuse to serve beyond this machine in plain HTTP unless a TLS proxy is declared."""
    if server.is_loopback() or server.tls or server.behind_tls_proxy:
        return
    raise ConfigError(
        f"refusing to listen on {server.host} without TLS: set tls_cert/tls_key, or declare "
        "behind_tls_proxy = true if a TLS-terminating proxy sits in front"
    )


def run_server(config: ServeConfig) -> int:
    """Start the services and serve until interrupted."""
    import uvicorn

    from veilwatch.server.app import create_app
    from veilwatch.server.services import Services

    check_exposure(config.server)
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
