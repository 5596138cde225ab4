"""`veilwatch audit verify-export`: check an exported clip against its manifest, offline."""

from __future__ import annotations

from pathlib import Path

from veilwatch.errors import InputError


def verify_export_file(clip: Path, manifest: Path | None, key: str) -> int:
    """Verify a clip and its manifest with the log's public key; print what it proves."""
    from veilwatch.clips.export import verify_export

    manifest_path = manifest or clip.with_suffix(".manifest.json")
    try:
        clip_bytes, manifest_bytes = clip.read_bytes(), manifest_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=str(exc.filename or clip)) from exc
    checked = verify_export(clip_bytes, manifest_bytes, key)
    print(
        f"verified: {clip} is the clip of camera {checked.camera} exported by {checked.exported_by}, "
        f"entry {checked.log_index} of the signed log of {checked.tree_size} entries (SHA-256 {checked.sha256})"
    )
    return 0
