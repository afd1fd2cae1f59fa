"""The video at the model's size and rate, segment by segment (base_frames): each segment's control
input (its camera, brush and static maps and keyframe latents), the regions the sampler holds, the
sampling and the decode; the first segment makes a base clip, each next one continues the last
`Plan.overlap` frames of the one before (SampleConfig.context latent frames). generate() runs the
post stages over what it yields.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np
import torch

from mutoscope.data.world_stream import from_model, to_model
from mutoscope.diffusion.flow import time_grid
from mutoscope.diffusion.rerank import EVIDENCE_TIMES, prompt_evidence
from mutoscope.diffusion.sampling import SAMPLERS, cfg_wrapper
from mutoscope.model import DiT, controls
from mutoscope.pipeline import Pipeline
from mutoscope.request import Plan

Callback = Callable[[str, int, int], None]  # (stage, done, total)


def model_frames(frames: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """uint8 (..., T, H, W, 3) -> (..., 3, T, H, W) in [-1, 1] (world_stream.to_model, as training
    reads clips), on like's device and dtype."""
    return to_model(torch.from_numpy(np.array(frames))).to(like.device, like.dtype)


def segment_maps(pipe: Pipeline, plan: Plan, start: int) -> controls.ControlMaps:
    """The camera, brush and static maps of a segment whose frame 0 is frame `start` of the video (at
    base rate): the model's inputs (segment_cond) and the regions the sampler holds (held_regions)."""
    cfg = pipe.config
    _, _, h, w = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    td = cfg.vae.temporal_down
    times = (start + np.arange(cfg.frames)) / cfg.fps
    maps = controls.ControlMaps()
    if plan.camera is not None:
        maps.camera = controls.camera_flow(plan.camera.path(times), (h, w), td, cfg.width / cfg.height)
    if plan.brush:
        maps.brush = controls.brush_map(plan.brush, cfg.frames, cfg.fps, (h, w), td, start=start / cfg.fps)
    if plan.static is not None:
        maps.static = controls.static_map(plan.static, (h, w))
    return maps


def segment_cond(
    pipe: Pipeline, plan: Plan, k: int, maps: controls.ControlMaps, tail, first
) -> torch.Tensor | None:
    """The control input of segment k: its maps (segment_maps) and keyframe latents."""
    cfg = pipe.config
    if not cfg.dit.cond_channels:
        return None
    _, T, h, w = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    cond = maps.tensor(cfg.dit.cond_channels, (T, h, w))
    weight = next(pipe.vae.parameters())
    with torch.inference_mode():
        if tail is not None:  # continue: the first latent frames are the tail's, encoded as a clip alone
            z = controls.clip_latents(pipe.vae, model_frames(tail, weight)[None])[0]  # (C, context, h, w)
            controls.set_keyframes(cond, z, list(range(z.shape[1])))
        elif first is not None:
            z = controls.still_latents(pipe.vae, model_frames(first[None, None], weight)[:, :, 0])
            controls.set_keyframes(cond, z[0][:, None], [0])
        if plan.end is not None and k == len(plan.segments) - 1:
            end = controls.still_latents(pipe.vae, model_frames(plan.end[None, None], weight)[:, :, 0])[0]
            controls.set_keyframes(cond, end[:, None], [T - 1])
    return cond[None].to(pipe.device)


BRUSH_HOLD_UNTIL = 0.25  # flow time at which the brushed regions are let go (docs/BENCHMARKS.md)


def held_regions(pipe: Pipeline, plan: Plan, maps: controls.ControlMaps, still: np.ndarray | None,
                 noise: torch.Tensor, start: float, at: float):  # fmt: skip
    """The sampler's projection (controls.held_path) for the regions the user fixed, or None.

    Both need a known frame, `still`, the video's at `at` seconds (the first keyframe, or the last
    frame an extension continues from; in plain text-to-video the trained channels alone steer the
    regions), and one VAE encode of the clip the controls describe from it (controls.brushed_frames;
    the frame held still where nothing is brushed). The static mask is held on it to the end: the
    region cannot drift. The brushed regions are held on its cut-and-paste animation down to
    BRUSH_HOLD_UNTIL: the early steps, which decide where things are, follow the path; the later
    ones, left to the model, decide how things look. The regions are the segment's maps, as the
    model reads them (segment_maps); `start`: the segment's frame 0 in seconds."""
    if still is None or not plan.hold or (plan.static is None and not plan.brush):
        return None
    cfg = pipe.config
    _, _, h, w = noise.shape[1:]
    frames = controls.brushed_frames(still, plan.brush, cfg.frames, cfg.fps, start, at)
    with torch.inference_mode():
        clip = model_frames(frames, next(pipe.vae.parameters()))[None]
        target = controls.clip_latents(pipe.vae, clip).to(noise)
    projections = []
    if plan.brush:
        left = controls.static_map(controls.brush_origin(plan.brush, at), (h, w))  # to the background
        region = np.maximum(maps.brush, left[None])
        projections.append(
            controls.held_path(target, noise, torch.from_numpy(region).to(noise), BRUSH_HOLD_UNTIL)
        )
    if plan.static is not None:  # after the brush: a still region stays still
        projections.append(controls.held_path(target, noise, torch.from_numpy(maps.static).to(noise)))

    def project(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        for held in projections:
            x = held(x, t)
        return x

    return project


def base_frames(pipe: Pipeline, plan: Plan, timings: dict, callback: Callback) -> Iterator[np.ndarray]:
    """The video at the model's size and rate, segment by segment: (n, H, W, 3) uint8 chunks."""
    cfg = pipe.config
    td, overlap = cfg.vae.temporal_down, plan.overlap
    t0 = time.perf_counter()
    prompts = sorted(set(plan.segments))
    states, mask = pipe.text.encode([*prompts, plan.negative])  # one batch: the prompts, the negative
    timings["text_s"] = time.perf_counter() - t0
    Cz, Tz, Hz, Wz = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    generator = torch.Generator().manual_seed(plan.seed)  # on the CPU: a seed gives the same video anywhere
    ts = time_grid(plan.steps, pipe.sample.shift)
    tail, first, made = plan.tail, plan.first, 0
    n = len(plan.segments)
    # Progress over every sampler step: the segments', and the first one's image stage if it has one.
    image_steps = plan.steps if plan.image_stage else 0
    for k, prompt in enumerate(plan.segments):
        # A continuing segment starts on the tail (an extension's first one on the given video's, frame 0).
        start = max(made - (0 if tail is None else overlap), 0)
        known_first = first if k == 0 else None
        still = tail[-1] if tail is not None else known_first  # the latest known frame
        maps = segment_maps(pipe, plan, start)
        cond = segment_cond(pipe, plan, k, maps, tail, known_first)
        noise = torch.randn(1, Cz, Tz, Hz, Wz, generator=generator).to(pipe.device)
        i = prompts.index(prompt)
        text = (states[i : i + 1], mask[i : i + 1], states[-1:], mask[-1:])
        t0 = time.perf_counter()

        def step(done: int, total: int, k=k, offset=image_steps) -> None:
            callback("denoise", offset + k * total + done, image_steps + n * total)

        from_known = still is not None
        if k == 0 and plan.image_stage:  # text-to-image, then the segment from that frame
            z0 = first_latent_frame(pipe, plan, cond[:, :, :1], text, ts, generator, partial(step, offset=0))
            cond = cond.clone()
            controls.set_keyframes(cond[0], z0[0].to(cond), [0])  # as a continuation's first latent frame
            from_known = True
        model = cfg_wrapper(with_cond(pipe.dit, cond), *text, plan.guidance(from_known=from_known))
        given = known_first is not None and tail is None  # a keyframe the user gave, not a drawn one
        x, times = known_start(pipe, plan, cond, noise, ts) if given else (noise, ts)

        at = start + (0 if tail is None else overlap - 1)
        hold = held_regions(pipe, plan, maps, still, noise, start / cfg.fps, at / cfg.fps)
        with torch.inference_mode():
            z = SAMPLERS[plan.sampler](model, x, times, callback=step, project=hold, generator=generator)
        timings["denoise_s"] = timings.get("denoise_s", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        z = pipe.vae.denormalize(z.float()).to(next(pipe.vae.parameters()).dtype)
        with torch.inference_mode():
            video = pipe.vae.decode_streamed(z)[0].float()  # (3, T, H, W)
        rgb = from_model(video.clamp(-1, 1)).cpu().numpy()
        timings["decode_s"] = timings.get("decode_s", 0.0) + time.perf_counter() - t0
        if plan.anchor:
            anchor(
                rgb,
                tail if tail is not None else (first if k == 0 else None),
                plan.end if k == n - 1 else None,
                td,
            )
        new = rgb if tail is None else rgb[overlap:]  # a continuation repeats its tail: drop it
        new = new[: plan.frames - made]
        made += len(new)
        callback("decode", k + 1, n)
        tail = rgb[-overlap:].copy()  # the marking stage writes into the chunks it is handed
        yield new


def known_start(
    pipe: Pipeline, plan: Plan, cond: torch.Tensor | None, noise: torch.Tensor, ts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the segment from a given first keyframe starts sampling: (x, time grid). With
    `plan.known_start` t0 < 1, from the keyframe's latent frame repeated over the segment, noised to
    t0 on the straight path, the grid scaled to [t0, 0] (the same number of steps); else from noise
    at t = 1.

    The repeated frame lays the scene out where the keyframe has it: the layout that sampling from
    noise decides above t = 0.5 and gets wrong (docs/BENCHMARKS.md, "Where the claims are lost"),
    while the noise leaves the model room to move things (ConsistI2V's FrameInit, Ren et al. 2024,
    starts from the frame's low frequencies). With a last keyframe too, from the one blended into
    the other over the segment. Not with a camera move, which a still frame repeated would hold back.
    The caller keeps it to a keyframe the user gave: a continuation's generated tail started so faded
    segment by segment, and the image stage's frame held its extra objects in every frame
    (docs/BENCHMARKS.md, "Sampling from the keyframe repeated")."""
    t0 = plan.known_start
    if t0 >= 1 or cond is None or plan.camera is not None:
        return noise, ts
    C = pipe.dit.cfg.in_channels
    known = cond[:, :C, :1].to(noise)  # the keyframe's latents (segment_cond): broadcast over the segment
    if cond[0, C, -1].max() > 0.5:  # and the last: from one to the other, linearly
        w = torch.linspace(0, 1, noise.shape[2], dtype=noise.dtype, device=noise.device)[:, None, None]
        known = (1 - w) * known + w * cond[:, :C, -1:].to(noise)
    return (1 - t0) * known + t0 * noise, ts * t0


def first_latent_frame(
    pipe: Pipeline,
    plan: Plan,
    cond: torch.Tensor,
    text: tuple[torch.Tensor, ...],
    ts: torch.Tensor,
    generator: torch.Generator,
    step: Callable[[int, int], None],
) -> torch.Tensor:
    """The image stage: the segment's first latent frame (1, C, 1, H, W) drawn from the prompt alone.
    With `plan.image_candidates` n > 1, n are drawn in one batch (the first from the noise a single
    draw takes) and the one the prompt explains best by the model's own reading is kept
    (diffusion/rerank.py)."""
    n = plan.image_candidates
    noise = torch.randn(n, pipe.image_model.cfg.in_channels, 1, *cond.shape[-2:], generator=generator)
    noise = noise.to(pipe.device)
    prompt, prompt_mask, neg, neg_mask = text
    many = (prompt.expand(n, -1, -1), prompt_mask.expand(n, -1), neg, neg_mask)
    image = cfg_wrapper(
        with_cond(pipe.image_model, cond.expand(n, -1, -1, -1, -1)), *many, plan.image_guidance
    )
    with torch.inference_mode():
        z0 = SAMPLERS[plan.sampler](image, noise, ts, callback=step, generator=generator)
        if n == 1:
            return z0
        # The evidence's noise from a generator of its own: asking does not move the video's draws.
        asked = torch.Generator().manual_seed(plan.seed)
        raw = with_cond(pipe.image_model, cond.expand(n * len(EVIDENCE_TIMES), -1, -1, -1, -1))
        evidence = prompt_evidence(raw, z0, *text, generator=asked)
    return z0[int(evidence.argmax())][None]


def anchor(rgb: np.ndarray, start: np.ndarray | None, end: np.ndarray | None, span: int) -> None:
    """Make a segment (T, H, W, 3) uint8 start and end exactly on the given pixels, in place.

    The model reaches a keyframe only as closely as the VAE reconstructs it (~29 dB); a user wants
    their image. `start` is a keyframe (H, W, 3) or the frames a continuation repeats (n, H, W, 3):
    the difference between the given and the generated frames at the start is added to the segment,
    fading linearly to zero over `span` frames (the first latent frame) after them, so there is no
    jump; `end` likewise for the last frame, fading backwards."""
    out = rgb.astype(np.float32)
    if start is not None:
        given = start if start.ndim == 4 else start[None]
        n = len(given)
        residual = given.astype(np.float32)[-1] - out[n - 1]
        out[:n] = given
        for j in range(1, span + 1):
            if n - 1 + j < len(out):
                out[n - 1 + j] += residual * (1 - j / (span + 1))
    if end is not None:
        residual = end.astype(np.float32) - out[-1]
        for j in range(min(span + 1, len(out))):
            out[-1 - j] += residual * (1 - j / (span + 1))
    rgb[:] = np.clip(np.rint(out), 0, 255).astype(np.uint8)


def with_cond(dit: DiT, cond: torch.Tensor | None) -> Callable[..., torch.Tensor]:
    """The DiT with this segment's control maps bound. Under CFG (a doubled batch: conditional, then
    negative) the negative half keeps the keyframes but loses the motion controls (camera, brush,
    static), so guidance pushes towards the requested motion as it does towards the prompt: joint
    guidance over text and motion, which the training's independent dropping of both allows."""
    if cond is None:
        return dit
    doubled = torch.cat([cond, controls.without_motion(cond, dit.cfg.in_channels)])  # once, not per step

    def model(x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        c = doubled if x.shape[0] == 2 * cond.shape[0] else cond
        return dit(x, t, text, mask, c.expand(x.shape[0], -1, -1, -1, -1).to(x.dtype))

    return model
