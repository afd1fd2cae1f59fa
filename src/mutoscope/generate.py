"""THE inference path: prompt -> MP4 + poster + record. The CLI, the benchmark and the worker call it.

`load_model()` once (text encoder, DiT, VAE), then `generate(pipe, request, out)` per video, in the
numbered steps of a diffusers pipeline: check inputs, encode text, draw noise, sample, decode, write.
A model directory holds config.json (a ModelConfig), dit.safetensors and vae.safetensors, plus an
optional sample.json (the SampleConfig defaults the model was tuned with).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mutoscope import __version__
from mutoscope.config import ModelConfig, SampleConfig, load_json, save_json
from mutoscope.config import preset as preset_config
from mutoscope.control_inputs import CameraControl, load_frame, load_mask, parse_brush, parse_camera
from mutoscope.data.world_stream import from_model, to_model
from mutoscope.diffusion.flow import time_grid
from mutoscope.diffusion.sampling import SAMPLERS, cfg_wrapper
from mutoscope.errors import UserError
from mutoscope.model import DiT, controls
from mutoscope.model.controls import Region
from mutoscope.text import TextEncoder
from mutoscope.vae import CausalVAE, channels_last

DEFAULT_MODEL = Path(__file__).parent / "weights" / "tiny"
MAX_STEPS = 1000
Callback = Callable[[str, int, int], None]  # (stage, done, total)


class GenerationCanceled(Exception):
    """Raised by a callback to stop a generation between steps; no output file is left behind."""


@dataclass(frozen=True)
class GenerationRequest:
    """One video. Controls (control_inputs.py says what each accepts) are all optional:

    first_frame / last_frame: keyframes (an image path or an (H, W, 3) uint8 array); loop: the video
    ends on its first frame; camera: a preset name, Kling-style axes or a path; brush: up to 5
    motion-brush regions; static_mask: what must not move; extend: an MP4 (or frames) to continue
    from its last frames; storyboard: shots [{"prompt", "seconds"}, ...] that replace prompt and
    seconds; fps: output frame rate (above the model's: learned interpolation); size: "WxH" output
    size (above the model's: learned super-resolution, then resampling).
    """

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None  # None: the model's SampleConfig
    cfg: float | None = None
    seconds: float = 2.0
    sampler: str | None = None
    watermark: bool = True  # the invisible mark (post/watermark.py) in every frame and the poster
    first_frame: Any = None
    last_frame: Any = None
    loop: bool = False
    camera: Any = None
    brush: Any = ()
    static_mask: Any = None
    extend: Any = None
    storyboard: Any = ()
    fps: float | None = None
    size: str | None = None
    anchor: bool = True  # keyframes and segment seams exact in pixels (see anchor()); off to measure
    hold: bool = True  # static and brushed regions held in the sampler (see _holds); off to measure


@dataclass(frozen=True)
class GenerationResult:
    video: Path
    poster: Path
    record: dict
    seed: int
    timings: dict[str, float]


@dataclass
class Pipeline:
    """A loaded model: load once, generate many times."""

    config: ModelConfig
    text: TextEncoder
    dit: DiT
    vae: CausalVAE
    model_id: str  # config name + a short hash of the weights
    sample: SampleConfig = field(default_factory=SampleConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    bf16: bool = False  # DiT and VAE weights in bf16 (see load_model); the sampler state stays fp32
    load_s: float = 0.0


def weights_hash(*modules: torch.nn.Module) -> str:
    """Short sha256 over the modules' parameters and buffers (names and bytes, in order)."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return h.hexdigest()[:8]


def bf16_default(device: torch.device) -> bool:
    """bf16 inference where the hardware has bf16 matmuls (AVX512-BF16 / AMX on CPU, Ampere+ on CUDA)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    from mutoscope.post.interpolate import native_bf16

    return native_bf16()


def load_model(path: str | Path | None = None, *, preset: str | None = None, device: str = "cpu",
               bf16: bool | None = None) -> Pipeline:  # fmt: skip
    """The shipped default (no arguments), a model directory (`path`) or a random model of a preset."""
    start = time.perf_counter()
    dev = torch.device(device)
    if preset is not None:
        if path is not None:
            raise ValueError("give a model path or a preset, not both")
        try:
            cfg = preset_config(preset)
        except ValueError as e:
            raise UserError("model.preset.unknown", str(e)) from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same preset gives the same random model (and model id)
            dit, vae = DiT(cfg.dit), CausalVAE(cfg.vae)
        sample = SampleConfig()
    else:
        directory = Path(path) if path is not None else DEFAULT_MODEL
        files = ("config.json", "dit.safetensors", "vae.safetensors")
        missing = [f for f in files if not (directory / f).is_file()]
        if missing:
            hint = "give a model directory, or a preset for an untrained model"
            raise UserError(
                "model.not_found", f"no model in {directory} (missing {', '.join(missing)}); {hint}"
            )
        from safetensors.torch import load_file

        cfg = load_json(ModelConfig, directory / "config.json")
        dit, vae = DiT(cfg.dit), CausalVAE(cfg.vae)
        dit.load_state_dict(dit.widen_state(load_file(directory / "dit.safetensors")))
        vae.load_state_dict(load_file(directory / "vae.safetensors"))
        has_sample = (directory / "sample.json").is_file()
        sample = load_json(SampleConfig, directory / "sample.json") if has_sample else SampleConfig()
    dit, vae = (m.to(dev).eval().requires_grad_(False) for m in (dit, vae))
    text = TextEncoder(cfg.text, device=dev)
    try:
        text.check_reader(cfg.dit.text_dim)
    except ValueError as e:
        raise UserError("model.config", str(e)) from None
    model_id = f"{cfg.name}-{weights_hash(dit, vae)}"  # of the weights as stored (fp32)
    use_bf16 = bf16_default(dev) if bf16 is None else bf16
    if use_bf16:
        # bf16 copies of the weights rather than autocast: without autograd, autocast re-casts every
        # weight on every call (a third of the DiT's step time here). Measured on this CPU, one thread:
        # DiT forward 165 -> 75 ms, VAE decode 820 -> 100 ms, final latents within 1% of fp32.
        dit, vae = dit.to(torch.bfloat16), vae.to(torch.bfloat16)
    vae = channels_last(vae)  # oneDNN's fast conv3d layout
    return Pipeline(cfg, text, dit, vae, model_id, sample, dev, use_bf16, time.perf_counter() - start)


def save_model(
    directory: str | Path, config: ModelConfig, dit: DiT, vae: CausalVAE, sample: SampleConfig | None = None
) -> Path:
    """Write a model directory that load_model(directory) reads back."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_json(config, directory / "config.json")
    for name, module in (("dit", dit), ("vae", vae)):  # always fp32 on disk, whatever runs in memory
        sd = {k: v.float() if v.is_floating_point() else v for k, v in module.state_dict().items()}
        save_file({k: v.contiguous() for k, v in sd.items()}, directory / f"{name}.safetensors")
    if sample is not None:
        save_json(sample, directory / "sample.json")
    return directory


MAX_SECONDS = 600.0  # ten minutes: memory is flat in length, time is linear
MAX_FPS = 60.0


@dataclass
class Plan:
    """A checked request: what generate() will do, every value valid."""

    seed: int
    steps: int
    cfg: float
    sampler: str
    frames: int  # base-rate frames of the output
    segments: list[str]  # the prompt of each segment
    fps: float  # output frame rate
    size: tuple[int, int]  # output (width, height)
    first: np.ndarray | None = None  # (H, W, 3) uint8 keyframes at the model's size
    last: np.ndarray | None = None
    loop: bool = False
    camera: CameraControl | None = None
    brush: list[Region] = field(default_factory=list)
    static: np.ndarray | None = None  # (H, W) mask
    tail: np.ndarray | None = None  # (temporal_down, H, W, 3) frames an extension continues from
    extends: str | None = None
    negative: str = ""
    notes: list[str] = field(default_factory=list)
    anchor: bool = True
    hold: bool = True

    @property
    def end(self) -> np.ndarray | None:
        """The frame the video must end on: the last keyframe, or the first one for a loop."""
        return self.last if self.last is not None else (self.first if self.loop else None)

    @property
    def controlled(self) -> bool:
        return any(
            v is not None for v in (self.first, self.last, self.camera, self.static, self.tail)
        ) or bool(self.brush or self.loop)


def _number(value: Any, code: str, what: str, lo: float, hi: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not lo < value <= hi
    ):
        raise UserError(code, f"{what} must be a number in ({lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _storyboard(req: GenerationRequest) -> list[tuple[str, float]]:
    """[(prompt, seconds)] of the shots: the storyboard, or the one prompt for `seconds`."""
    if not req.storyboard:
        if not isinstance(req.prompt, str) or not req.prompt.strip():
            raise UserError("input.prompt.empty", "the prompt is empty")
        return [(req.prompt, _number(req.seconds, "input.seconds.invalid", "seconds", 0, MAX_SECONDS))]
    shots = []
    for i, shot in enumerate(req.storyboard):
        if (
            not isinstance(shot, dict)
            or not isinstance(shot.get("prompt"), str)
            or not shot["prompt"].strip()
        ):
            raise UserError("input.storyboard.shot", f"shot {i}: needs a non-empty prompt")
        shots.append(
            (
                shot["prompt"],
                _number(shot.get("seconds"), "input.storyboard.seconds", f"shot {i} seconds", 0, MAX_SECONDS),
            )
        )
    if sum(sec for _, sec in shots) > MAX_SECONDS:
        raise UserError("input.seconds.invalid", f"a storyboard of at most {MAX_SECONDS:g} s")
    return shots


def _size(value: str | None, cfg: ModelConfig) -> tuple[int, int]:
    if value is None or value == "base":
        return cfg.width, cfg.height
    size = SIZES.get(value, value)
    try:
        w, h = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise UserError(
            "input.size.invalid", f"size is 'WxH' or one of {', '.join(SIZES)}, got {value!r}"
        ) from None
    if not (cfg.width <= w <= MAX_SIDE and cfg.height <= h <= MAX_SIDE) or w % 2 or h % 2:
        raise UserError(
            "input.size.invalid",
            f"size {w}x{h}: even sides from the model's {cfg.width}x{cfg.height} to {MAX_SIDE}",
        )
    return w, h


SIZES = {"1080p": "1920x1080", "1080p-vertical": "1080x1920", "1080p-square": "1080x1080", "720p": "1280x720"}
MAX_SIDE = 1920


def _check(pipe: Pipeline, req: GenerationRequest, out: Path) -> Plan:
    """The request checked against the model: a Plan, or UserError with a dotted code."""
    cfg = pipe.config
    if out.suffix.lower() != ".mp4":
        raise UserError("output.suffix", f"the output must be an .mp4 file, got {out.name!r}")
    if not out.parent.is_dir():
        raise UserError("output.dir.missing", f"no such directory: {out.parent}")
    shots = _storyboard(req)
    steps = pipe.sample.steps if req.steps is None else req.steps
    if not isinstance(steps, int) or not 0 < steps <= MAX_STEPS:
        raise UserError("input.steps.invalid", f"steps must be an integer in 1..{MAX_STEPS}, got {steps!r}")
    scale = pipe.sample.cfg if req.cfg is None else req.cfg
    if not isinstance(scale, int | float) or not math.isfinite(scale) or scale < 0:
        raise UserError("input.cfg.invalid", f"cfg must be a finite number >= 0, got {scale!r}")
    sampler = pipe.sample.sampler if req.sampler is None else req.sampler
    if sampler not in SAMPLERS:
        choices = ", ".join(SAMPLERS)
        raise UserError("input.sampler.unknown", f"unknown sampler {sampler!r}; choose from {choices}")
    seed = secrets.randbelow(2**31) if req.seed is None else req.seed
    if not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UserError("input.seed.invalid", f"seed must be an integer in 0..2**63-1, got {seed!r}")
    fps = cfg.fps if req.fps is None else _number(req.fps, "input.fps.invalid", "fps", 0, MAX_FPS)
    if fps < cfg.fps:
        raise UserError("input.fps.invalid", f"fps must be at least the model's {cfg.fps:g}")
    W, H = cfg.width, cfg.height
    plan = Plan(seed, steps, float(scale), sampler, 0, [], fps, _size(req.size, cfg), loop=bool(req.loop))
    plan.anchor = bool(req.anchor)
    plan.hold = bool(req.hold)
    if not isinstance(req.negative_prompt, str):
        raise UserError("input.negative_prompt.invalid", "the negative prompt must be text")
    plan.negative = req.negative_prompt
    if req.first_frame is not None:
        plan.first = load_frame(req.first_frame, W, H, "input.first_frame")
    if req.last_frame is not None:
        plan.last = load_frame(req.last_frame, W, H, "input.last_frame")
    if plan.loop and plan.last is not None:
        raise UserError(
            "input.loop.conflict", "a loop ends on its first frame: give loop or last_frame, not both"
        )
    plan.camera = parse_camera(req.camera)
    plan.brush = parse_brush(list(req.brush or ()), W, H)
    if req.static_mask is not None:
        plan.static = load_mask(req.static_mask, W, H, "input.static_mask")
    if req.extend is not None:
        plan.tail, plan.extends = (
            _tail(req.extend, cfg),
            str(req.extend) if not isinstance(req.extend, np.ndarray) else "frames",
        )
    if plan.controlled and not pipe.config.dit.cond_channels:
        raise UserError(
            "model.controls.unsupported", f"model {pipe.model_id} takes no control inputs (text only)"
        )

    # Segments: the first makes a base clip; each next one continues the last `temporal_down` frames
    # of the one before (its first latent frame given) and adds the rest. An extension starts there.
    td, base = cfg.vae.temporal_down, cfg.frames
    total = max(1, round(sum(sec for _, sec in shots) * cfg.fps))
    first_new = base if plan.tail is None else base - td
    n_seg = 1 + max(0, math.ceil((total - first_new) / (base - td)))
    if plan.last is not None or plan.loop:  # the last frame must be the last of a whole segment
        whole = first_new + (n_seg - 1) * (base - td)
        if whole != total:
            plan.notes.append(
                f"length rounded to {whole / cfg.fps:g} s so that the video ends on its keyframe"
            )
        total = whole
    plan.frames = total
    bounds = np.cumsum([0.0] + [sec for _, sec in shots])
    for k in range(n_seg):
        start = 0 if k == 0 else first_new + (k - 1) * (base - td)  # the segment's first new frame
        shot = int(np.searchsorted(bounds, start / cfg.fps, side="right")) - 1
        plan.segments.append(shots[min(shot, len(shots) - 1)][0])
    return plan


def _tail(source: Any, cfg: ModelConfig) -> np.ndarray:
    """The last temporal_down frames of the video an extension continues, at the model's size."""
    from mutoscope.post.mp4 import read_frames

    if isinstance(source, np.ndarray):
        frames = source
    else:
        try:
            frames = read_frames(source)
        except FileNotFoundError:
            raise UserError("input.extend.not_found", f"no such video: {source}") from None
        except Exception as e:  # PyAV raises its own errors for a file that is not a video
            raise UserError("input.extend.unreadable", f"cannot read {source} as a video: {e}") from None
    td = cfg.vae.temporal_down
    if frames.ndim != 4 or len(frames) < td:
        raise UserError("input.extend.short", f"a video to extend needs at least {td} frames")
    return np.stack([load_frame(f, cfg.width, cfg.height, "input.extend") for f in frames[-td:]])


def _to_model(frames: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """uint8 (..., T, H, W, 3) -> (..., 3, T, H, W) in [-1, 1] (world_stream.to_model, as training
    reads clips), on like's device and dtype."""
    return to_model(torch.from_numpy(np.array(frames))).to(like.device, like.dtype)


def _segment_maps(pipe: Pipeline, plan: Plan, start: int) -> controls.ControlMaps:
    """The camera, brush and static maps of a segment whose frame 0 is frame `start` of the video (at
    base rate): the model's inputs (_segment_cond) and the regions the sampler holds (_holds)."""
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


def _segment_cond(
    pipe: Pipeline, plan: Plan, k: int, maps: controls.ControlMaps, tail, first
) -> torch.Tensor | None:
    """The control input of segment k: its maps (_segment_maps) and keyframe latents."""
    cfg = pipe.config
    if not cfg.dit.cond_channels:
        return None
    _, T, h, w = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    cond = maps.tensor(cfg.dit.cond_channels, (T, h, w))
    weight = next(pipe.vae.parameters())
    with torch.inference_mode():
        if tail is not None:  # continue: the first latent frame is the tail, encoded as a clip alone
            clip = _to_model(tail, weight)[None].contiguous(memory_format=torch.channels_last_3d)
            controls.set_keyframes(cond, pipe.vae.normalize(pipe.vae.encode(clip)[0].float())[0, :, :1], [0])
        elif first is not None:
            z = controls.still_latents(pipe.vae, _to_model(first[None, None], weight)[:, :, 0])
            controls.set_keyframes(cond, z[0][:, None], [0])
        if plan.end is not None and k == len(plan.segments) - 1:
            end = controls.still_latents(pipe.vae, _to_model(plan.end[None, None], weight)[:, :, 0])[0]
            controls.set_keyframes(cond, end[:, None], [T - 1])
    return cond[None].to(pipe.device)


BRUSH_HOLD_UNTIL = 0.25  # flow time at which the brushed regions are let go (docs/BENCHMARKS.md)


def _holds(pipe: Pipeline, plan: Plan, maps: controls.ControlMaps, still: np.ndarray | None,
           noise: torch.Tensor, start: float, at: float):  # fmt: skip
    """The sampler's projection (controls.held_path) for the regions the user fixed, or None.

    Both need a known frame, `still`, the video's at `at` seconds (the first keyframe, or the last
    frame an extension continues from; in plain text-to-video the trained channels alone steer the
    regions), and one VAE encode of the clip the controls describe from it (controls.brushed_frames;
    the frame held still where nothing is brushed). The static mask is held on it to the end: the
    region cannot drift. The brushed regions are held on its cut-and-paste animation down to
    BRUSH_HOLD_UNTIL: the early steps, which decide where things are, follow the path; the later
    ones, left to the model, decide how things look. The regions are the segment's maps, as the
    model reads them (_segment_maps); `start`: the segment's frame 0 in seconds."""
    if still is None or not plan.hold or (plan.static is None and not plan.brush):
        return None
    cfg = pipe.config
    _, _, h, w = noise.shape[1:]
    frames = controls.brushed_frames(still, plan.brush, cfg.frames, cfg.fps, start, at)
    with torch.inference_mode():
        clip = _to_model(frames, next(pipe.vae.parameters()))[None]
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


def _base_frames(pipe: Pipeline, plan: Plan, timings: dict, callback: Callback) -> Iterator[np.ndarray]:
    """The video at the model's size and rate, segment by segment: (n, H, W, 3) uint8 chunks."""
    cfg = pipe.config
    td = cfg.vae.temporal_down
    t0 = time.perf_counter()
    prompts = sorted(set(plan.segments))
    states, mask = pipe.text.encode([*prompts, plan.negative])  # one batch: the prompts, the negative
    timings["text_s"] = time.perf_counter() - t0
    Cz, Tz, Hz, Wz = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    generator = torch.Generator().manual_seed(plan.seed)  # on the CPU: a seed gives the same video anywhere
    ts = time_grid(plan.steps, pipe.sample.shift)
    tail, first, made = plan.tail, plan.first, 0
    n = len(plan.segments)
    for k, prompt in enumerate(plan.segments):
        # A continuing segment starts on the tail (an extension's first one on the given video's, frame 0).
        start = max(made - (0 if tail is None else td), 0)
        known_first = first if k == 0 else None
        maps = _segment_maps(pipe, plan, start)
        cond = _segment_cond(pipe, plan, k, maps, tail, known_first)
        noise = torch.randn(1, Cz, Tz, Hz, Wz, generator=generator).to(pipe.device)
        i = prompts.index(prompt)
        t0 = time.perf_counter()
        model = cfg_wrapper(
            _with_cond(pipe.dit, cond), states[i : i + 1], mask[i : i + 1], states[-1:], mask[-1:], plan.cfg
        )

        def step(done: int, total: int, k=k) -> None:
            callback("denoise", k * total + done, n * total)

        still = tail[-1] if tail is not None else known_first  # the latest known frame
        at = start + (0 if tail is None else td - 1)
        hold = _holds(pipe, plan, maps, still, noise, start / cfg.fps, at / cfg.fps)
        with torch.inference_mode():
            z = SAMPLERS[plan.sampler](model, noise, ts, callback=step, project=hold)
        timings["denoise_s"] = timings.get("denoise_s", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        z = pipe.vae.denormalize(z.float()).to(next(pipe.vae.parameters()).dtype)
        with torch.inference_mode():
            video = torch.cat(list(pipe.vae.iter_decode(z)), dim=2)[0].float()  # (3, T, H, W)
        rgb = from_model(video.clamp(-1, 1)).cpu().numpy()
        timings["decode_s"] = timings.get("decode_s", 0.0) + time.perf_counter() - t0
        if plan.anchor:
            anchor(
                rgb,
                tail if tail is not None else (first if k == 0 else None),
                plan.end if k == n - 1 else None,
                td,
            )
        new = rgb if tail is None else rgb[td:]  # a continuation repeats its tail: drop it
        new = new[: plan.frames - made]
        made += len(new)
        callback("decode", k + 1, n)
        tail = rgb[-td:].copy()  # the marking stage writes into the chunks it is handed
        yield new


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


def _with_cond(dit: DiT, cond: torch.Tensor | None) -> Callable[..., torch.Tensor]:
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


def output_frames(frames: int, src_fps: float, dst_fps: float) -> int:
    """Frames at dst_fps covering a clip of `frames` at src_fps: every time k / dst_fps before the
    clip's end, frames / src_fps (post/interpolate.py; 16 frames at 8 fps -> 60 at 30 fps)."""
    from mutoscope.post.mp4 import frame_rate

    if dst_fps == src_fps:
        return frames
    return math.ceil(frames * frame_rate(dst_fps) / frame_rate(src_fps))


def generate(pipe: Pipeline, req: GenerationRequest, out: str | Path,
             callback: Callback | None = None) -> GenerationResult:  # fmt: skip
    """Generate one video to `out` (.mp4), its poster (.png) and record (.json); see the module doc.

    Memory stays flat in the video's length: segments are made, post-processed, marked and encoded
    as a stream of chunks; only the poster frame is kept."""
    from mutoscope.post.mp4 import sidecar_path, write_mp4_stream, write_poster

    cfg, timings = pipe.config, {}
    start = time.perf_counter()
    out = Path(out)
    callback = callback or (lambda stage, done, total: None)

    # 1. Check inputs (controls included) into a plan: segments, sizes, keyframes, camera, brush.
    plan = _check(pipe, req, out)
    if plan.loop and plan.first is None:
        # A loop ends where it starts: make the first segment with the same seed, loop on its frame 0.
        # (Not done to give the brush a first frame: the model seldom puts an object under a region
        # drawn on nothing, so the hold would carry ground; docs/BENCHMARKS.md.)
        first_only = dataclasses.replace(plan, segments=plan.segments[:1], loop=False, frames=cfg.frames)
        plan.first = next(_base_frames(pipe, first_only, {}, lambda *a: None))[0]

    # 2-5. Text, noise, sampling and decoding per segment (_base_frames), then the post stages; each
    #      stage is a generator of chunks, timed inclusive of the stages it pulls from.
    inclusive: dict[str, float] = {}
    chunks = _timed(_base_frames(pipe, plan, timings, callback), "generate", inclusive)
    count = plan.frames
    if plan.fps != cfg.fps:
        from mutoscope.post.interpolate import interpolate_stream, load_interpolator

        interp = interpolate_stream(chunks, cfg.fps, plan.fps, load_interpolator())
        chunks = _timed(interp, "interpolate", inclusive)
        count = output_frames(count, cfg.fps, plan.fps)
    if plan.size != (cfg.width, cfg.height):
        from mutoscope.post.upscale import load_upscaler, upscale_stream

        chunks = _timed(upscale_stream(chunks, plan.size, load_upscaler()), "upscale", inclusive)

    # 6. Mark (before the one and only encode: a re-encode would weaken the mark), keep the poster
    #    frame, encode the MP4 with its record (atomic), then the poster.
    # fmt: off
    record = {
        "prompt": req.prompt, "negative_prompt": plan.negative, "seed": plan.seed, "steps": plan.steps,
        "cfg": plan.cfg, "sampler": plan.sampler, "shift": pipe.sample.shift,
        "seconds_requested": req.seconds, "seconds": count / plan.fps, "width": plan.size[0],
        "height": plan.size[1], "frames": count, "fps": plan.fps, "model": pipe.model_id,
        "generator": f"mutoscope {__version__}", "notes": plan.notes, "segments": len(plan.segments),
        "base": {"width": cfg.width, "height": cfg.height, "fps": cfg.fps, "frames": plan.frames},
        "controls": _describe(req, plan),
    }
    # fmt: on
    if req.watermark:
        from mutoscope.post import watermark

        record["watermark"] = watermark.record_entry()
    poster_at, poster = count // 2, []

    def marked() -> Iterator[np.ndarray]:
        done = 0
        for chunk in chunks:
            t0 = time.perf_counter()
            if req.watermark:  # in place: the chunk is ours (every stage makes new arrays)
                chunk = watermark.embed_into(chunk, start=done)
            if done <= poster_at < done + len(chunk):
                poster.append(chunk[poster_at - done].copy())
            done += len(chunk)
            timings["mark_s"] = timings.get("mark_s", 0.0) + time.perf_counter() - t0
            yield chunk

    t0 = time.perf_counter()
    shape = (count, plan.size[1], plan.size[0])
    x264 = "medium" if max(plan.size) <= 256 else "veryfast"  # 1080p: ~40 frames/s on 2 cores
    write_mp4_stream(out, marked(), plan.fps, shape, record, preset=x264)
    # Exclusive times: each stage's inclusive time less the stage it pulls from; the rest is encoding.
    previous = 0.0
    for name, spent in inclusive.items():
        if name != "generate":
            timings[f"{name}_s"] = spent - previous
        previous = spent
    timings["encode_s"] = time.perf_counter() - t0 - previous - timings.get("mark_s", 0.0)
    write_poster(out.with_suffix(".png"), poster[0])
    timings["total_s"] = time.perf_counter() - start
    timings["step_s"] = timings.get("denoise_s", 0.0) / (plan.steps * len(plan.segments))
    full_record = json.loads(sidecar_path(out).read_text())  # the record as written, with its video block
    return GenerationResult(out, out.with_suffix(".png"), full_record, plan.seed, timings)


def _timed(chunks: Iterator[np.ndarray], name: str, spent: dict[str, float]) -> Iterator[np.ndarray]:
    """Pass chunks through, adding the time spent getting each to spent[name] (entered now, so that
    `spent` lists the stages in the order they were chained, however lazily they start)."""
    spent[name] = 0.0

    def timed() -> Iterator[np.ndarray]:
        it = iter(chunks)
        while True:
            t0 = time.perf_counter()
            chunk = next(it, None)
            spent[name] += time.perf_counter() - t0
            if chunk is None:
                return
            yield chunk

    return timed()


def _describe(req: GenerationRequest, plan: Plan) -> dict[str, Any]:
    """The controls used, for the record (images by name, not pixels)."""

    def name(image: Any) -> str:  # the file name only: a server's paths stay out of the shared record
        return "array" if isinstance(image, np.ndarray) else Path(str(image)).name

    out: dict[str, Any] = {}
    if req.first_frame is not None:
        out["first_frame"] = name(req.first_frame)
    if req.last_frame is not None:
        out["last_frame"] = name(req.last_frame)
    if plan.loop:
        out["loop"] = True
    if plan.camera is not None:
        out["camera"] = plan.camera.describe()
    if plan.brush:
        out["brush"] = [{"path": r.path.tolist()} for r in plan.brush]
    if req.static_mask is not None:
        out["static_mask"] = name(req.static_mask)
    if plan.static is not None or plan.brush:
        out["held_in_sampler"] = plan.hold and (plan.first is not None or plan.tail is not None)
    if plan.extends is not None:
        out["extend"] = name(req.extend)
    if req.storyboard:
        out["storyboard"] = [{"prompt": p["prompt"], "seconds": p["seconds"]} for p in req.storyboard]
    return out
