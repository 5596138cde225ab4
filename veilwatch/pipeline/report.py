"""What was found and veiled, per frame: the `--report` JSON, and the unveiled-run audit.

The audit answers, per video: for how many consecutive frames at most was a face the tracker
followed left unveiled inside its track (`longest_tracked_gap`; not a count of faces shown, which
needs ground truth)? A face counts as tracked between its first and last sighting, if the detector was
confident of it at least once (`CONFIRMED_SCORE`; flickering low-score boxes on clutter are not
faces to audit); in a frame between
them where the detector missed it, its position is interpolated from the sightings around, and it
counts as veiled when one veil region covers at least `COVERED` of that box. The goal is 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veilwatch.boxes import FloatArray, coverage
from veilwatch.frames import VeiledFrame
from veilwatch.redaction.veils import veil_areas
from veilwatch.settings import VeilSettings
from veilwatch.tracking.tracker import Track

COVERED = 0.9
CONFIRMED_SCORE = 0.5


@dataclass
class StreamReport:
    """Per-frame records of one image or video, plus what the audit needs."""

    veil: VeilSettings
    keep_frames: bool
    frames: list[dict[str, Any]] = field(default_factory=list)
    veils: dict[int, FloatArray] = field(default_factory=dict)
    faces_found: int = 0

    def add(self, veiled: VeiledFrame) -> None:
        """Record one finished frame."""
        index = veiled.frame.index
        self.faces_found += len(veiled.detections)
        self.veils[index] = veil_areas(veiled.veiled_boxes, self.veil)
        if self.keep_frames:
            self.frames.append(_frame_record(veiled))

    def longest_tracked_gap(
        self, tracks: list[Track], within: range | None = None, place: Callable[[Track, int], FloatArray] | None = None
    ) -> int:
        """Most consecutive frames in which some tracked face was not covered by a veil.

        It sees only faces the detector found (confidently, at least once) and only between their
        first and last sightings: a face never found, or missed at the ends of its track, does not
        count. So 0 means "no gap inside a track", never "no face was shown"; only a judge with ground
        truth (`../shared/tools/video_veil_check.py`) can tell that.

        `within` limits the audit to those frames (a part of a file, which records only its own).
        """
        worst = 0
        for track in tracks:
            if track.peak_score < CONFIRMED_SCORE:
                continue
            run = 0
            first, last = track.first, track.last
            if within is not None:
                first, last = max(first, within.start), min(last, within.stop - 1)
            for index in range(first, last + 1):
                box = place(track, index) if place is not None else track.estimate(index)[0]
                veils = self.veils.get(index)
                covered = veils is not None and len(veils) > 0 and coverage(box[None], veils).max() >= COVERED
                run = 0 if covered else run + 1
                worst = max(worst, run)
        return worst


def _frame_record(veiled: VeiledFrame) -> dict[str, Any]:
    found, held = veiled.detections, veiled.held
    return {
        "index": veiled.frame.index,
        "time": veiled.frame.seconds,
        "faces": [
            {"box": _rounded(box), "score": round(float(score), 4), "track": int(track)}
            for box, score, track in zip(found.boxes, found.scores, found.track_ids, strict=True)
        ],
        "held": [
            {"box": _rounded(box), "track": int(track)} for box, track in zip(held.boxes, held.track_ids, strict=True)
        ],
    }


def _rounded(box: np.ndarray[Any, Any]) -> list[float]:
    return [round(float(v), 1) for v in box]
