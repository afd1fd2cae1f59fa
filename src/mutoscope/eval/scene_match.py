"""What the judge saw against the scene the prompt describes: objects drawn as asked, and extras.

The claims score what a prompt asks for, one claim at a time, and an object the prompt asks for
passes wherever the judge finds it, whatever else the clip paints. A clip of many blobs gives the
judge many chances: every model so far that painted less lost claims (docs/BENCHMARKS.md,
"Over-painting"). These measures put the other side beside the claims:

- precision: of the objects the judge tracks, the share that are one of the scene's objects (the same
  color and shape, each scene object matched at most once);
- recall: of the scene's objects, the share the judge finds so;
- exact: the clip shows the scene's objects and nothing else.

The scene is the suite prompt's spec, which the caption describes. Labels are matched as multisets:
with one label per object on each side, the largest matching is the per-label minimum.
"""

from __future__ import annotations

from collections import Counter

from mutoscope.world.judge.reading import SceneReading
from mutoscope.world.spec import SceneSpec


def scene_match(reading: SceneReading, spec: SceneSpec) -> dict[str, int]:
    """{"seen": objects the judge tracks, "asked": the scene's objects, "matched": pairs of the same
    color and shape}."""
    seen = Counter((o.color, str(o.shape)) for o in reading.objects)
    asked = Counter((o.color, str(o.shape)) for o in spec.objects)
    return {"seen": sum(seen.values()), "asked": sum(asked.values()), "matched": sum((seen & asked).values())}


def match_summary(matches: list[dict[str, int]]) -> dict[str, float]:
    """Precision and recall pooled over clips (a clip of many blobs weighs by its blobs), the share
    of exact clips, and the mean number of extra objects a clip."""
    seen = sum(m["seen"] for m in matches)
    asked = sum(m["asked"] for m in matches)
    matched = sum(m["matched"] for m in matches)
    exact = sum(m["seen"] == m["asked"] == m["matched"] for m in matches)
    return {
        "precision": matched / seen if seen else 0.0,
        "recall": matched / asked if asked else 0.0,
        "exact": exact / len(matches) if matches else 0.0,
        "extra": sum(m["seen"] - m["matched"] for m in matches) / len(matches) if matches else 0.0,
    }
