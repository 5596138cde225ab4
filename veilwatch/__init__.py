"""veilwatch: faces veiled at the edge, watchers watched."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("veilwatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
