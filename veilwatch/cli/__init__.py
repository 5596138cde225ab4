"""The `veilwatch` command.

The console script imports only this module: worker processes (spawned) re-import the script that
started the run, and should not load the whole command line again for nothing.
"""


def main() -> None:
    """Console entry point."""
    from veilwatch.cli.app import main as run

    run()
