"""How much the trip through the VAE that a continuation makes grows the objects (issue 4, extension).

    .venv/bin/python bench/vae_round_trip.py [--model DIR] [--clips 24] [--trips 12] [--seed 2]

generate() decodes each segment to uint8 frames and encodes the last ones again (alone, as the first
chunk of the next segment) for the continuation's known latents. On world clips of 16 frames, the
judge's object cover (the share of the frame in any object color's blob, eval/runner.painted) of:

    truth           the last 4 rendered frames
    decoded         the same frames through the VAE (the whole clip encoded and decoded)
    next segment    `decoded`'s last 4 frames encoded alone and decoded: what a model that copies its
                    known latents would show at the start of the next segment
    chain           `truth`'s last 4 frames through `--trips` such trips in a row

Ratios above 1 mean the trip paints the objects larger; compounded over the segments of a long video
they grow the objects even under a model that keeps what it is shown.

`--continuations N` also runs the whole path on N world scenes of 3.5 s: generate() continues the
first 16 rendered frames (`extend`) with the scene's caption for 12 new frames, whose cover is set
beside the truth's own next 12 frames: the model's share of the growth on top of the trip.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--trips", type=int, default=12)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--continuations", type=int, default=0, help="also continue this many truth clips")
    args = ap.parse_args()

    from mutoscope.eval.runner import object_cover, vae_roundtrip
    from mutoscope.generate import load_model
    from mutoscope.world.judge.perception import perceive
    from mutoscope.world.render import render
    from mutoscope.world.sample import sample_spec

    pipe = load_model(args.model)
    vae, cfg = pipe.vae, pipe.config
    tail = cfg.vae.temporal_down

    def cover(frames: np.ndarray) -> float:
        return float(object_cover(perceive(frames)).mean())

    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.clips):
        frames = render(sample_spec(rng, seconds=cfg.frames / cfg.fps), cfg.width, cfg.height, cfg.fps)
        decoded = vae_roundtrip(vae, frames)
        chain = [frames[-tail:]]
        for _ in range(args.trips):
            chain.append(vae_roundtrip(vae, chain[-1]))
        next_segment = vae_roundtrip(vae, decoded[-tail:])
        rows.append([cover(frames[-tail:]), cover(decoded[-tail:]), cover(next_segment)]
                    + [cover(c) for c in chain[1:]])  # fmt: skip
    mean = np.array(rows).mean(axis=0)
    result = {
        "clips": args.clips,
        "cover_truth": round(mean[0], 4),
        "cover_decoded": round(mean[1], 4),
        "cover_next_segment": round(mean[2], 4),
        "decoded_over_truth": round(mean[1] / mean[0], 3),
        "next_segment_over_decoded": round(mean[2] / mean[1], 3),
        "chain_cover": [round(mean[0], 4)] + [round(c, 4) for c in mean[3:]],
    }
    if args.continuations:
        result |= continuations(pipe, args.continuations, cover)
    print(json.dumps(result))


def continuations(pipe, n: int, cover) -> dict:
    """Cover of 12 generated frames that continue a truth clip's first 16, against the truth's next 12."""
    import tempfile
    from pathlib import Path

    from mutoscope.generate import GenerationRequest, generate
    from mutoscope.post.mp4 import read_frames
    from mutoscope.world.caption import caption
    from mutoscope.world.render import render
    from mutoscope.world.sample import sample_spec

    cfg = pipe.config
    rng = np.random.default_rng(5)
    truth_next, made = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(n):
            spec = sample_spec(rng, seconds=(cfg.frames + 12) / cfg.fps)
            truth = render(spec, cfg.width, cfg.height, cfg.fps)
            out = Path(tmp) / f"{s}.mp4"
            req = GenerationRequest(
                caption(spec).text, seed=s, extend=truth[: cfg.frames], seconds=12 / cfg.fps
            )
            generate(pipe, req, out)
            truth_next.append(cover(truth[cfg.frames :]))
            made.append(cover(read_frames(out)))
    ratios = np.array(made) / np.maximum(truth_next, 1e-4)
    return {
        "continuations": n,
        "cover_truth_next": round(float(np.mean(truth_next)), 4),
        "cover_continued": round(float(np.mean(made)), 4),
        "continued_over_truth": round(float(np.mean(made) / np.mean(truth_next)), 3),
        "continued_over_truth_median": round(float(np.median(ratios)), 3),
        "share_over_1_3": round(float((ratios > 1.3).mean()), 3),
    }


if __name__ == "__main__":
    main()
