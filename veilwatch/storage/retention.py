"""How long recordings are kept, and what goes first when the disk fills up.

Only complete segments are ever deleted here, always the oldest first; a segment being written
belongs to its recorder.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from veilwatch.errors import ConfigError
from veilwatch.storage.recordings import SegmentIndex

__all__ = ["RetentionPolicy", "enforce", "free_space"]

_BATCH = 256


@dataclass(frozen=True)
class RetentionPolicy:
    """Limits for one camera's recordings; None means no limit of that kind."""

    max_age_s: float | None = None  # a segment goes once it ended longer ago than this
    max_bytes: int | None = None  # oldest segments go while the camera holds more than this

    def __post_init__(self) -> None:
        if self.max_age_s is not None and not self.max_age_s > 0:
            raise ConfigError(f"retention max_age_s must be positive, got {self.max_age_s}")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise ConfigError(f"retention max_bytes must not be negative, got {self.max_bytes}")


def enforce(index: SegmentIndex, policies: Mapping[str, RetentionPolicy], now: float) -> list[int]:
    """Delete the segments each camera's policy no longer allows, oldest first; their ids."""
    deleted: list[int] = []
    for camera, policy in policies.items():
        if policy.max_age_s is not None:
            deleted += _delete_older(index, camera, now - policy.max_age_s)
        if policy.max_bytes is not None:
            deleted += _evict(index, camera, index.usage(camera) - policy.max_bytes)
    return deleted


def free_space(index: SegmentIndex, data_dir: Path, min_free_bytes: int) -> list[int]:
    """Delete the oldest complete segments of any camera until `min_free_bytes` are free; their ids."""
    deficit = min_free_bytes - shutil.disk_usage(data_dir).free
    # Deletes by the bytes each file frees, not until the disk reports enough: a file still open
    # elsewhere (someone watching a playback) frees nothing yet, and re-checking the disk would
    # then delete the whole archive.
    return _evict(index, None, deficit) if deficit > 0 else []


def _delete_older(index: SegmentIndex, camera: str, cutoff: float) -> list[int]:
    deleted: list[int] = []
    while batch := index.oldest_complete(camera, limit=_BATCH, ended_before=cutoff):
        for segment in batch:
            index.delete(segment.id)
            deleted.append(segment.id)
    return deleted


def _evict(index: SegmentIndex, camera: str | None, excess: int) -> list[int]:
    deleted: list[int] = []
    while excess > 0 and (batch := index.oldest_complete(camera, limit=_BATCH)):
        for segment in batch:
            freed = index.delete(segment.id)
            deleted.append(segment.id)
            excess -= max(freed, segment.bytes, 1)  # at least 1, so the loop always ends
            if excess <= 0:
                break
    return deleted
