"""The judge: read a video back into the world's facts from its pixels, and score claims about it.

    report = judge("clip.mp4", prompt="a crimson star spins clockwise on a brick wall")
    report = judge(frames, claims, fps=8)      # frames: (T, H, W, 3) uint8 RGB
    for v in report.verdicts: print(v.passed, v.claim.describe(), v.evidence)
    report.consistency.score                    # 0..100

Never reads a spec: everything comes from the frames (see reading.py for the pipeline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mutoscope.errors import UserError
from mutoscope.world.claims import Claim
from mutoscope.world.judge.consistency import Consistency, consistency
from mutoscope.world.judge.motion import Happening, happenings
from mutoscope.world.judge.reading import DEFAULT_FPS, SceneReading, read_scene
from mutoscope.world.judge.verdicts import VERDICTS, Context, Verdict


@dataclass
class JudgeReport:
    verdicts: list[Verdict]
    consistency: Consistency
    reading: SceneReading
    motions: list[list[Happening]]
    seconds: float  # time the judge took

    @property
    def passed(self) -> int:
        return sum(v.passed for v in self.verdicts)

    @property
    def all_passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def scene_summary(self) -> list[str]:
        r = self.reading
        lines = [f"{len(r.objects)} object(s); camera {r.camera.summary()}; background {r.background}"]
        for o, hs in zip(r.objects, self.motions, strict=True):
            lines.append(f"{o.describe()}: " + (", ".join(h.describe() for h in hs) or "-"))
        return lines

    def to_dict(self) -> dict:
        return {
            "verdicts": [v.to_dict() for v in self.verdicts],
            "passed": self.passed,
            "total": len(self.verdicts),
            "consistency": self.consistency.to_dict(),
            "scene": self.scene_summary(),
            "fps": self.reading.fps,
            "frames": self.reading.n_frames,
            "judge_seconds": round(self.seconds, 4),
        }


def load_video(path: str | Path) -> tuple[np.ndarray, float]:
    """(T, H, W, 3) uint8 RGB frames and fps of a video file."""
    from mutoscope.post.mp4 import probe, read_frames, read_record

    p = Path(path)
    if not p.is_file():
        raise UserError("judge.video.missing", f"no such video file: {p}")
    try:
        frames = read_frames(p)
        fps = ((read_record(p) or {}).get("video") or {}).get("fps") or probe(p)["fps"]
    except (ValueError, OSError) as e:  # PyAV's errors derive from these
        raise UserError("judge.video.unreadable", f"cannot read {p} as a video: {e}") from None
    return frames, float(fps)


def judge(
    video: str | Path | np.ndarray,
    claims: list[Claim] | None = None,
    *,
    prompt: str | None = None,
    fps: float | None = None,
) -> JudgeReport:
    """Judge `claims` (or the claims `prompt` makes) against a video file or a frame array."""
    start = time.perf_counter()
    if isinstance(video, (str, Path)):
        frames, file_fps = load_video(video)
        fps = fps or file_fps
    else:
        frames = np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise UserError("judge.video.shape", f"expected (T, H, W, 3) RGB frames, got {frames.shape}")
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    if prompt is not None:
        from mutoscope.world.grammar import parse_prompt

        claims = list(claims or []) + parse_prompt(prompt)
    reading = read_scene(frames, fps or DEFAULT_FPS)
    analysed = [happenings(o) for o in reading.objects]
    motions = [h for h, _ in analysed]
    ctx = Context(reading, motions)
    verdicts = [VERDICTS[c.type](ctx, c) for c in claims or []]
    score = consistency(reading, [rms for _, rms in analysed])
    return JudgeReport(verdicts, score, reading, motions, time.perf_counter() - start)


__all__ = ["Consistency", "JudgeReport", "Verdict", "judge", "load_video"]
