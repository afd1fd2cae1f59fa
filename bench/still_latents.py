"""Are a still region's latents constant in time? (Whether a sampler could hold a static mask by
making its latent frames equal.)

    .venv/bin/python bench/still_latents.py [--vae DIR ...] [--n 8]

Each of the dev suite's first n scenes, its frame 0 held for the clip's length, through each VAE:
the RMS distance of latent frame k from the last one, relative to the last one's RMS. Zero at every
k would make "equal latent frames" a static constraint; in a causal VAE the first chunk has no past,
and the later ones still settle.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vae", nargs="+", default=["src/mutoscope/weights/tiny"],
                   help="exported model directories or VAE runs")  # fmt: skip
    p.add_argument("--n", type=int, default=8, help="scenes")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import numpy as np
    import torch

    from mutoscope.data.world_stream import to_model
    from mutoscope.eval.suites import suite
    from mutoscope.train.dit_task import load_vae_with_config
    from mutoscope.world.render import render

    torch.set_num_threads(args.threads)
    prompts = suite("dev", args.n)
    for path in args.vae:
        cfg, vae = load_vae_with_config(path)
        rel = []
        for prompt in prompts:
            frames = render(prompt.spec, cfg.width, cfg.height, cfg.fps)
            still = np.repeat(frames[:1], cfg.frames, axis=0)
            x = to_model(torch.from_numpy(still))[None].contiguous(memory_format=torch.channels_last_3d)
            with torch.inference_mode():
                z = vae.normalize(vae.encode(x)[0].float())[0]
            last = z[:, -1].pow(2).mean().sqrt()
            rel.append([float((z[:, k] - z[:, -1]).pow(2).mean().sqrt() / last) for k in range(z.shape[1])])
        means = " ".join(f"{v:.3f}" for v in np.mean(rel, 0))
        print(f"{path}: latent frame k vs the last, relative RMS distance, {len(prompts)} stills: {means}")


if __name__ == "__main__":
    main()
