"""The body of a Ray worker (an actor): a `JobRunner` (the model loaded once) serving jobs one at a time.

It speaks the same protocol as local worker processes (`pipeline/protocol.py`); only progress
travels differently, to a small hub actor the driver reads. Ray restarts an actor that dies
(reloading the model) and retries the job it was running.
"""

from __future__ import annotations

import os
import time
from typing import Any

from veilwatch.pipeline.protocol import Job, JobKey, Outcome
from veilwatch.pipeline.runner import JobRunner, PartFrameHook
from veilwatch.settings import AnonymizeSettings

PROGRESS_INTERVAL_S = 0.2


class VeilWorker:
    """One Ray actor: an engine loaded once, serving jobs."""

    def __init__(self, settings_json: str, on_part_frame: PartFrameHook | None = None) -> None:
        self._runner = JobRunner(AnonymizeSettings.model_validate_json(settings_json), on_part_frame)

    def describe(self) -> dict[str, str]:
        """Provider and precision of the loaded model (for benchmarks and `doctor`-like checks)."""
        engine = self._runner.engine
        if engine is None:
            return {}
        return {"provider": engine.network.provider, "precision": engine.network.precision}

    def run(self, key: JobKey, job: Job, hub: Any, cwd: str) -> Outcome:
        """Run one job in the driver's folder `cwd`; file errors come back as `JobFailed`, never raised."""
        if os.path.isdir(cwd):
            # Paths stay as the user typed them (relative ones too), so messages read as locally;
            # shared storage puts the driver's folder at the same path on every node.
            os.chdir(cwd)
        last = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL_S or done == total:
                last = now
                hub.update.remote(key, done, total)  # fire and forget

        return self._runner.run(key, job, progress)
