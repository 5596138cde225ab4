"""One file's summary from its parts' results, with one track id per face across the parts.

Each part numbers its tracks from 0. The whole run numbers them in the order they were first
seen, so: a track first seen in a part's written frames gets the next id in (part, first frame,
local id) order; a track first seen in a part's warm-up or look-ahead is the track of the part
that wrote that first sighting (same frame, same box: the parts find exactly the same faces),
and gets its id. A sighting no part wrote (it cannot happen while parts agree) gets a new id.
"""

from __future__ import annotations

from typing import Any

from veilwatch.pipeline.protocol import PartResult
from veilwatch.scale.split import Part

Sighting = tuple[int, tuple[float, ...]]  # frame index, box as the records round it


def merge_summary(source: str, output: str, parts: list[tuple[Part, PartResult]], seconds: float) -> dict[str, Any]:
    """The file summary the local engine would give, from its parts in order."""
    results = [result for _, result in parts]
    summary: dict[str, Any] = {
        "source": source,
        "output": output,
        "kind": "video",
        "frames": sum(r.frames for r in results),
        "faces_detected": sum(r.faces for r in results),
        "tracks": sum(r.tracks for r in results),
        "longest_tracked_gap": max((r.longest_tracked_gap for r in results), default=0),
        "seconds": round(seconds, 3),
    }
    records = stitched_records(parts)
    if records:
        summary["frame_records"] = records
    return summary


def stitched_records(parts: list[tuple[Part, PartResult]]) -> list[dict[str, Any]]:
    """Every part's frame records in order, with track ids made whole-file ids."""
    written = _written_sightings(parts)
    ids: list[dict[int, int]] = [{} for _ in parts]
    next_id = 0
    for number, (part, result) in enumerate(parts):  # tracks born in the written frames
        born = sorted(
            (first, local) for local, (first, _) in result.track_firsts.items() if part.start <= first < part.end
        )
        for _, local in born:
            ids[number][local] = next_id
            next_id += 1
    counter = [next_id]

    def resolve(number: int, local: int, visiting: frozenset[tuple[int, int]]) -> int:
        """A warm-up or look-ahead track's id: that of the track of whichever part wrote its first sighting."""
        if local not in ids[number]:
            owner = written.get(_sighting(parts[number][1].track_firsts[local]))
            if owner is not None and owner not in visiting and owner[1] in parts[owner[0]][1].track_firsts:
                ids[number][local] = resolve(*owner, visiting | {(number, local)})
            else:
                ids[number][local] = counter[0]
                counter[0] += 1
        return ids[number][local]

    for number, (_, result) in enumerate(parts):
        for local in sorted(result.track_firsts):
            resolve(number, local, frozenset())
    records = []
    for number, (_, result) in enumerate(parts):
        for record in result.frame_records:
            records.append(_renumbered(record, ids[number]))
    return records


def _written_sightings(parts: list[tuple[Part, PartResult]]) -> dict[Sighting, tuple[int, int]]:
    """Every detection a part wrote → (part number, local track id)."""
    found: dict[Sighting, tuple[int, int]] = {}
    for number, (_, result) in enumerate(parts):
        for record in result.frame_records:
            for face in record["faces"]:
                found[(record["index"], tuple(face["box"]))] = (number, face["track"])
    return found


def _sighting(first: tuple[int, tuple[float, ...]]) -> Sighting:
    return first[0], tuple(first[1])


def _renumbered(record: dict[str, Any], ids: dict[int, int]) -> dict[str, Any]:
    return {
        **record,
        "faces": [{**face, "track": ids.get(face["track"], face["track"])} for face in record["faces"]],
        "held": [{**held, "track": ids.get(held["track"], held["track"])} for held in record["held"]],
    }
