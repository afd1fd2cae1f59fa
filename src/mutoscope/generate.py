"""THE inference path: prompt -> MP4 + poster + record. The CLI, the benchmark and the worker call it.

`load_model()` once (text encoder, DiT, VAE), then `generate(pipe, request, out)` per video, in the
numbered steps of a diffusers pipeline: check inputs, encode text, draw noise, sample, decode, write.
A model directory holds config.json (a ModelConfig), dit.safetensors and vae.safetensors, plus an
optional sample.json (the SampleConfig defaults the model was tuned with).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from einops import rearrange

from mutoscope import __version__
from mutoscope.config import ModelConfig, SampleConfig, load_json, save_json
from mutoscope.config import preset as preset_config
from mutoscope.diffusion.flow import time_grid
from mutoscope.diffusion.sampling import SAMPLERS, cfg_wrapper
from mutoscope.errors import UserError
from mutoscope.model import DiT
from mutoscope.text import TextEncoder
from mutoscope.vae import CausalVAE, channels_last

DEFAULT_MODEL = Path(__file__).parent / "weights" / "tiny"
MAX_STEPS = 1000
Callback = Callable[[str, int, int], None]  # (stage, done, total)


class GenerationCanceled(Exception):
    """Raised by a callback to stop a generation between steps; no output file is left behind."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    steps: int | None = None  # None: the model's SampleConfig
    cfg: float | None = None
    seconds: float = 2.0
    sampler: str | None = None
    watermark: bool = True  # the invisible mark (post/watermark.py) in every frame and the poster


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
    try:  # oneDNN reports bf16 "supported" on any AVX512 CPU, emulated and slower; ask for the real thing
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
        dit.load_state_dict(load_file(directory / "dit.safetensors"))
        vae.load_state_dict(load_file(directory / "vae.safetensors"))
        has_sample = (directory / "sample.json").is_file()
        sample = load_json(SampleConfig, directory / "sample.json") if has_sample else SampleConfig()
    dit, vae = (m.to(dev).eval().requires_grad_(False) for m in (dit, vae))
    text = TextEncoder(cfg.text, device=dev)
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


def _check(pipe: Pipeline, req: GenerationRequest, out: Path) -> tuple[int, int, float, str, int]:
    """Validated (seed, steps, cfg, sampler, frames to keep); UserError with a dotted code otherwise."""
    if out.suffix.lower() != ".mp4":
        raise UserError("output.suffix", f"the output must be an .mp4 file, got {out.name!r}")
    if not out.parent.is_dir():
        raise UserError("output.dir.missing", f"no such directory: {out.parent}")
    if not isinstance(req.prompt, str) or not req.prompt.strip():
        raise UserError("input.prompt.empty", "the prompt is empty")
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
    if not isinstance(req.seconds, int | float) or not math.isfinite(req.seconds) or req.seconds <= 0:
        raise UserError("input.seconds.invalid", f"seconds must be a positive number, got {req.seconds!r}")
    seed = secrets.randbelow(2**31) if req.seed is None else req.seed
    if not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UserError("input.seed.invalid", f"seed must be an integer in 0..2**63-1, got {seed!r}")
    frames = min(pipe.config.frames, max(1, round(req.seconds * pipe.config.fps)))
    return seed, steps, float(scale), sampler, frames


def generate(pipe: Pipeline, req: GenerationRequest, out: str | Path,
             callback: Callback | None = None) -> GenerationResult:  # fmt: skip
    """Generate one video to `out` (.mp4), its poster (.png) and record (.json); see the module doc."""
    from mutoscope.post.mp4 import sidecar_path, write_mp4, write_poster

    cfg, timings = pipe.config, {}
    start = time.perf_counter()
    out = Path(out)
    callback = callback or (lambda stage, done, total: None)

    # 1. Check inputs. Longer than the base clip: clamped for now (extension is issue 4); shorter: trimmed.
    seed, steps, scale, sampler, frames = _check(pipe, req, out)
    base = cfg.frames / cfg.fps
    notes = [f"seconds clamped to the base clip of {base:g} s (extension comes later)"] * (req.seconds > base)

    # 2. Encode the prompt and the negative prompt ("" = unconditional) in one batch.
    t0 = time.perf_counter()
    states, mask = pipe.text.encode([req.prompt, req.negative_prompt])  # (2, L, D), (2, L)
    timings["text_s"] = time.perf_counter() - t0

    # 3. Draw the initial noise on the CPU from the seed, so a seed gives the same video on any device.
    Cz, Tz, Hz, Wz = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, Cz, Tz, Hz, Wz, generator=generator).to(pipe.device)  # (1, Cz, Tz, Hz, Wz)

    # 4. Sample: integrate the flow ODE from t = 1 (noise) to t = 0 with classifier-free guidance.
    t0 = time.perf_counter()
    model = cfg_wrapper(pipe.dit, states[:1], mask[:1], states[1:], mask[1:], scale)
    ts = time_grid(steps, pipe.sample.shift)
    with torch.inference_mode():
        z = SAMPLERS[sampler](model, noise, ts, callback=lambda done, total: callback("denoise", done, total))
    timings["denoise_s"] = time.perf_counter() - t0
    timings["step_s"] = timings["denoise_s"] / steps

    # 5. Decode, streamed one latent frame at a time; causal, so a prefix of latents gives the prefix.
    t0 = time.perf_counter()
    z = pipe.vae.denormalize(z.float())[:, :, : math.ceil(frames / cfg.vae.temporal_down)]
    z = z.to(next(pipe.vae.parameters()).dtype)
    pieces = []
    callback("decode", 0, z.shape[2])
    with torch.inference_mode():
        for piece in pipe.vae.iter_decode(z):
            pieces.append(piece)
            callback("decode", len(pieces), z.shape[2])
    video = torch.cat(pieces, dim=2)[0, :, :frames].float()  # (3, T, H, W) in about [-1, 1]
    rgb = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    rgb = rearrange(rgb, "c t h w -> t h w c").cpu().numpy()
    timings["decode_s"] = time.perf_counter() - t0

    # 6. Write the poster, then the MP4 with its record (atomic; a failed MP4 takes the poster along).
    t0 = time.perf_counter()
    # fmt: off
    record = {
        "prompt": req.prompt, "negative_prompt": req.negative_prompt, "seed": seed, "steps": steps,
        "cfg": scale, "sampler": sampler, "shift": pipe.sample.shift, "seconds_requested": req.seconds,
        "seconds": frames / cfg.fps, "width": cfg.width, "height": cfg.height, "frames": frames,
        "fps": cfg.fps, "model": pipe.model_id, "generator": f"mutoscope {__version__}", "notes": notes,
    }
    # fmt: on
    if req.watermark:  # marked before the one and only encode: a re-encode would weaken the mark
        from mutoscope.post import watermark

        rgb = watermark.embed(rgb)
        record["watermark"] = watermark.record_entry()
    poster = write_poster(out.with_suffix(".png"), rgb[frames // 2])
    try:
        write_mp4(out, rgb, cfg.fps, record)
    except BaseException:
        poster.unlink(missing_ok=True)
        raise
    timings["encode_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    full_record = json.loads(sidecar_path(out).read_text())  # the record as written, with its video block
    return GenerationResult(out, poster, full_record, seed, timings)
