"""The one exception tree of veilwatch.

    VeilwatchError                      (exit code 1)
    ├── InputError                      a file the user gave cannot be used        (exit 2)
    │   ├── InputNotFoundError          ... does not exist (also FileNotFoundError)
    │   ├── UnsupportedInputError       ... is neither an image nor a video we read
    │   │   └── OversizedInputError     ... declares more pixels than veilwatch decodes (media/limits.py)
    │   └── CorruptInputError           ... is truncated or damaged
    ├── OutputError                     an output cannot be written                (exit 3)
    ├── ModelError                      the face detector cannot be loaded         (exit 4)
    ├── VeilingError                    a frame could not be veiled: fail closed   (exit 5)
    ├── ConfigError                     a setting is invalid                       (exit 2)
    ├── WorkerCrashedError              an isolated worker died (e.g. a decoder segfault)
    ├── InternalError                   an unexpected exception while veiling a file (a bug, told in one line)
    ├── StorageError                    the database or the recordings cannot be used
    ├── PTZError                        a camera's ONVIF PTZ head cannot be reached or refuses a move
    ├── UserError                       a user name, password or role is rejected  (exit 2; also ValueError)
    │   └── UnknownUserError            ... there is no such user (also LookupError)
    ├── AuditError                      the tamper-evident log cannot append, sign or prove (exit 7)
    │   └── LogVerificationError        a log, checkpoint or proof fails: tampering, rollback, split view (exit 8)
    │       └── ExportError             an exported clip does not match its manifest (veilwatch.clips.export)
    └── VaultError                      the key vault refuses                      (exit 6)
        ├── WrongPassphraseError        a holder's share file does not open with that passphrase
        ├── VaultFileError              a vault, share, request or approval file is malformed (also ValueError)
        ├── SealedDataError             a sealed blob does not open: wrong key or associated data, or damaged
        └── ApprovalRefused             an unmask approval is refused; `.reason` says which rule

Every class owns its CLI exit code; messages are one line and name the file involved.
"""

from __future__ import annotations


class VeilwatchError(Exception):
    """Base of every error veilwatch raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)

    def one_line(self) -> str:
        """The message as one line, prefixed with the file it concerns."""
        text = " ".join(str(self).split())
        return f"{self.path}: {text}" if self.path else text


class InputError(VeilwatchError):
    """A user-supplied input cannot be read."""

    exit_code = 2


class InputNotFoundError(InputError, FileNotFoundError):
    """The input path does not exist."""


class UnsupportedInputError(InputError):
    """The input is neither an image nor a video veilwatch can read."""


class OversizedInputError(UnsupportedInputError):
    """The input declares a picture larger than veilwatch agrees to decode."""


class CorruptInputError(InputError):
    """The input is truncated or damaged."""


class OutputError(VeilwatchError):
    """An output cannot be written (exists, permission, disk full)."""

    exit_code = 3


class ModelError(VeilwatchError):
    """The face detector model cannot be found or loaded."""

    exit_code = 4


class VeilingError(VeilwatchError):
    """A frame could not be veiled, so nothing of it may be written."""

    exit_code = 5


class ConfigError(VeilwatchError, ValueError):
    """A setting is invalid."""

    exit_code = 2


class WorkerCrashedError(VeilwatchError):
    """An isolated worker process died while handling a file."""

    exit_code = 5


class InternalError(VeilwatchError):
    """An unexpected exception while veiling one file: a bug, reported as one line while the run goes on."""

    @classmethod
    def wrap(cls, exc: BaseException, path: str) -> InternalError:
        """The one-line stand-in for an unexpected exception raised while handling `path`."""
        text = " ".join(str(exc).split())[:200]
        detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return cls(f"internal error ({detail}); please report it", path=path)


class StorageError(VeilwatchError):
    """The database or the recordings store cannot be opened or used."""

    exit_code = 1


class PTZError(VeilwatchError):
    """A camera's real PTZ head (ONVIF) cannot be reached, refuses the credentials, or refuses a move."""

    def __init__(self, message: str, *, camera: str) -> None:
        self.camera = camera
        super().__init__(message)


class UserError(VeilwatchError, ValueError):
    """A user name, password or role is rejected (invalid, too weak, or a duplicate)."""

    exit_code = 2


class UnknownUserError(UserError, LookupError):
    """No user has this name."""


class VaultError(VeilwatchError):
    """The key vault refuses: keys, shares, sealed data or approvals do not check out."""

    exit_code = 6


class WrongPassphraseError(VaultError):
    """A key holder's share bundle does not open with the passphrase given."""


class VaultFileError(VaultError, ValueError):
    """A vault, share bundle, unmask request or approval file is malformed or of an unknown version."""


class SealedDataError(VaultError):
    """A sealed blob does not open: wrong key, wrong associated data (camera, time), truncated or altered."""


class ApprovalRefused(VaultError):  # noqa: N818 - a verdict, not a fault; named by the vault design
    """An unmask approval (or a set of them) is refused; `reason` names the rule that refused it."""

    def __init__(self, reason: str, message: str, *, holder: str | None = None) -> None:
        self.reason = reason
        self.holder = holder
        super().__init__(message)


class AuditError(VeilwatchError):
    """The tamper-evident log cannot append, sign, store or prove; the action it was to record is refused."""

    exit_code = 7


class LogVerificationError(AuditError):
    """A log, checkpoint or proof does not verify: tampering, a rollback or a split view."""

    exit_code = 8
