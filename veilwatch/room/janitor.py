"""Retention in the background: old recordings and sealed faces go, and free disk space is kept."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from veilwatch.config import ServeConfig
from veilwatch.storage.recordings import SegmentIndex
from veilwatch.storage.retention import RetentionPolicy, enforce, free_space
from veilwatch.storage.sealed_faces import SealedFaceStore

__all__ = ["RETENTION_INTERVAL_S", "janitor"]

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 60.0


@contextlib.contextmanager
def janitor(config: ServeConfig, segments: SegmentIndex, faces: SealedFaceStore) -> Iterator[None]:
    """Run retention passes every RETENTION_INTERVAL_S while inside; the thread is joined on leaving."""
    stop = threading.Event()
    thread = threading.Thread(target=_keep_tidy, args=(config, segments, faces, stop), name="retention", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _keep_tidy(config: ServeConfig, segments: SegmentIndex, faces: SealedFaceStore, stop: threading.Event) -> None:
    policies = {
        c.name: RetentionPolicy(max_age_s=c.retention_days * 86400, max_bytes=c.retention_mb * 1_000_000)
        for c in config.cameras
    }
    min_free = config.server.min_free_disk_mb * 1_000_000
    while not stop.wait(RETENTION_INTERVAL_S):
        try:
            now = time.time()
            enforce(segments, policies, now)
            for name, policy in policies.items():
                if policy.max_age_s is not None:
                    faces.delete_older(name, now - policy.max_age_s)
            free_space(segments, config.server.data_dir, min_free)
        except Exception:  # retry next round; never stop the room for this
            log.exception("retention pass failed")
