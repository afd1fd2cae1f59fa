"""Where along the flow path a model loses the claims: sample from the truth's latents noised to t0.

`python bench/claims_by_start_time.py --suite dev --n 60 --t0 0.3 0.5 0.7 1.0 [--model DIR] --out DIR`
encodes each suite prompt's ground-truth render with the model's VAE, noises it to t0 on the straight
path (1 - t0) z + t0 noise (the suite seed's noise, as generate() draws it), runs the model's sampler
from t0 to 0 on the model's time grid (its steps below t0), decodes, writes the MP4 and judges it
(SDEdit, Meng et al. 2022). t0 = 1 is plain generation (without generate()'s watermark, so a clip
may differ from the eval's by a verdict); t0 -> 0 approaches the truth through the VAE. A model
that passes most claims from t0 = 0.3 but few from 1 draws what it is shown and fails at laying the
scene out; one that fails from 0.3 too cannot draw the objects. Writes
`t{t0}/rows.jsonl` (the eval report's rows) under --out and prints the eval report's table, a column
per t0.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mutoscope.data.world_stream import from_model, to_model
from mutoscope.diffusion.flow import time_grid
from mutoscope.diffusion.sampling import SAMPLERS, cfg_wrapper
from mutoscope.eval.report import markdown, summarise
from mutoscope.eval.runner import judged_row
from mutoscope.eval.suites import suite
from mutoscope.model import controls
from mutoscope.pipeline import Pipeline, load_model
from mutoscope.post.mp4 import write_mp4
from mutoscope.segments import with_cond
from mutoscope.world.render import render


@torch.inference_mode()
def from_noised_truth(pipe: Pipeline, frames: np.ndarray, text, mask, seed: int, t0: float) -> np.ndarray:
    """uint8 (T, H, W, 3): the truth's latents noised to t0, sampled to 0 by the model, decoded."""
    cfg, weight = pipe.config, next(pipe.vae.parameters())
    shape = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    z0 = controls.clip_latents(pipe.vae, to_model(torch.from_numpy(frames))[None].to(weight.dtype))
    noise = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
    grid = time_grid(pipe.sample.steps, pipe.sample.shift)
    ts = torch.cat([torch.tensor([t0]), grid[grid < t0]])
    cond = None
    if cfg.dit.cond_channels:
        cond = controls.ControlMaps().tensor(cfg.dit.cond_channels, shape[1:])[None]
    model = cfg_wrapper(with_cond(pipe.dit, cond), text[:1], mask[:1], text[1:], mask[1:], pipe.sample.cfg)
    z = SAMPLERS[pipe.sample.sampler](model, (1 - t0) * z0 + t0 * noise, ts)
    z = pipe.vae.denormalize(z.float()).to(weight.dtype)
    video = pipe.vae.decode_streamed(z)[0].float()
    return from_model(video.clamp(-1, 1)).cpu().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="dev")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--t0", type=float, nargs="+", default=[0.3, 0.5, 0.7, 1.0])
    ap.add_argument("--model", type=Path, help="a model directory (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_model(args.model)
    cfg, prompts = pipe.config, suite(args.suite, args.n)
    every: list[dict] = []
    for t0 in args.t0:
        out = args.out / f"t{t0:.2f}"
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for p in prompts:
            start = time.perf_counter()
            text, mask = pipe.text.encode([p.text, ""])
            truth = render(p.spec, cfg.width, cfg.height, cfg.fps)
            frames = from_noised_truth(pipe, truth, text, mask, p.seed, t0)
            path, source = out / f"{p.index:04d}.mp4", f"from the truth at t0 {t0}"
            write_mp4(path, frames, cfg.fps, record={"prompt": p.text, "source": source})
            rows.append(judged_row(p, source, path, time.perf_counter() - start))
        (out / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        every += rows
    print(markdown(summarise(every)))


if __name__ == "__main__":
    main()
