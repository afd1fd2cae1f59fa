"""Configs as frozen dataclasses, presets as plain dicts of values; every checkpoint saves its config.

A model is a (VAEConfig, DiTConfig) pair plus the text encoder it was trained with; `ModelConfig`
bundles them with the clip geometry, and is what `weights/<name>/config.json` holds. The presets
go from `tiny` (the CPU default, trained on the procedural world) to ~1B-parameter GPU configs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar


@dataclass(frozen=True)
class VAEConfig:
    """Causal 3-D convolutional video autoencoder with a KL bottleneck."""

    in_channels: int = 3
    latent_channels: int = 16
    base_channels: int = 32  # width of the first stage; doubled per `channel_mult`
    channel_mult: tuple[int, ...] = (1, 2, 2)  # one stage per entry; all but the last downsample
    # Powers of two; len(channel_mult) - 1 resolution changes make the larger of them (vae/model.py).
    spatial_down: int = 4
    temporal_down: int = 4  # causal: latent frame k sees frames < (k + 1) * temporal_down
    blocks_per_stage: int = 1
    # The decoder's res blocks per stage (0: blocks_per_stage). A deeper decoder than encoder: the
    # latent space is the encoder's, so a decoder deepened and retrained with the encoder frozen
    # ships with every DiT trained on that encoder (as Stable Diffusion's ft-MSE decoder did).
    decoder_blocks_per_stage: int = 0
    kl_weight: float = 1e-6
    # Reconstruction weight of saturated (object) pixels relative to the desaturated background:
    # objects are a few percent of the pixels, and a 6-pixel object must keep its color.
    object_weight: float = 10.0
    # Also weight the pixels the reconstruction paints saturated (vae/model.object_weights): without
    # it the weight grows every object by the fringe it makes cheap.
    weight_painted: bool = False
    # Latents are standardised by these before the DiT sees them (measured after VAE training).
    latent_mean: float = 0.0
    latent_std: float = 1.0


@dataclass(frozen=True)
class DiTConfig:
    """Diffusion transformer over latent patches (adaLN-Zero, text cross-attention, 3-D RoPE)."""

    in_channels: int = 16  # = VAEConfig.latent_channels
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (t, h, w) in latent units
    dim: int = 256
    depth: int = 8
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384  # MiniLM token states
    qk_norm: bool = True
    long_skip: bool = False  # U-ViT long skip connections (Vidu's backbone)
    # Control inputs (model/controls.py): latent_channels + 6 extra input channels (keyframes, camera,
    # motion brush, static mask); 0 is a text-only model.
    cond_channels: int = 0
    # RoPE positions anchored to the scene where the camera is a control (model/controls.py's
    # camera_positions); False: screen positions always (models trained before it).
    camera_rope: bool = False
    # Self-attention blocks over the text tokens before the blocks read them (model/text_refiner.py):
    # MiniLM's state of a shape word does not say which color the prompt gives it. Tried at 2
    # (2026-12-07, 1500 steps): level with its control (docs/BENCHMARKS.md, "A token refiner"). 0: none.
    text_refiner: int = 0


@dataclass(frozen=True)
class TextConfig:
    """The frozen text encoder: a local Hugging Face model path, or None for the bundled MiniLM."""

    path: str | None = None
    max_tokens: int = 48
    dim: int = 384
    # Four RGB features per token of a color name beside its states (text_colors.py): the DiT's
    # text_dim is then dim + 4. MiniLM only (its tokenizer's offsets place the names).
    color_features: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a text-to-video model: saved as `config.json` beside its weights."""

    name: str = "tiny"
    width: int = 64
    height: int = 64
    frames: int = 16  # base clip length; longer videos by extension
    fps: float = 8.0
    vae: VAEConfig = field(default_factory=VAEConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    text: TextConfig = field(default_factory=TextConfig)


@dataclass(frozen=True)
class SampleConfig:
    """Defaults for sampling; every one can be overridden per call of generate()."""

    steps: int = 20
    # euler | heun | ancestral (diffusion/sampling.py); ancestral and Heun measured level with Euler.
    sampler: str = "euler"
    cfg: float = 5.0
    shift: float = 1.0  # resolution-dependent time shift (SD3): larger for more latent tokens
    context: int = 1  # latent frames a continuing segment is given of the one before (1 or 2 trained)
    # Guidance of a segment that starts from known frames (a first keyframe, or a continuation's tail),
    # None: cfg. The frames carry the objects already; the prompt guided as strongly again repaints
    # them as text-to-video does, larger and blobbier in every latent frame (docs/BENCHMARKS.md,
    # "Guidance from known frames").
    continue_cfg: float | None = None
    # Text-to-video as text-to-image, then image-to-video (Emu Video's factorisation): a segment
    # drawn from the prompt alone first samples its first latent frame by itself (a quarter of the
    # tokens), then the whole segment from it, as a continuation of that frame (at continue_cfg).
    # Only for a video of one segment without motion controls (request.Plan.image_stage).
    image_first: bool = False
    # Guidance of that image stage, None: cfg. At 4 level with 8 on dev (docs/BENCHMARKS.md, "The image
    # stage on a text-to-image DiT of its own, and at its own guidance").
    image_cfg: float | None = None
    # Candidates of that first latent frame, drawn in one batch; the one the prompt explains best by
    # the model's own reading is kept (diffusion/rerank.py). 1: a single draw. At 4 (2026-12-07): dev
    # 34.1% against 33.7%, level, at 1.35x the time, the chosen frames painting more (4.8 blobs a
    # frame against 4.2); chosen by the conditional error alone instead, fewer blobs (3.5) and 32.2%
    # against 33.5% (110 prompts). docs/BENCHMARKS.md, "A token refiner; the best of four first frames".
    image_candidates: int = 1
    # The flow time the segment from a given first keyframe starts at: the keyframe's latent frame
    # repeated over the segment, noised to this time (segments.known_start); 1: from noise. Not with
    # a camera move; not for continuations nor the image stage's frame.
    known_start: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """One training run (VAE or DiT): optimiser, schedule, precision, checkpoints."""

    what: str = "dit"  # vae | dit | interp | sr
    batch_size: int = 16  # global batch, split across ranks
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 500
    max_steps: int = 100_000
    # Warm-up, stable, then a cool-down over the last `decay_steps` steps before max_steps, the
    # learning rate falling to 0 as 1 - sqrt(progress) (the WSD schedule; Hagele et al. 2024 found
    # this shape beat linear and matched cosine). A constant-LR run can be resumed with a larger
    # --steps and --decay-steps to end it. 0 = constant after the warm-up.
    decay_steps: int = 0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1  # for classifier-free guidance
    # DiT only: extra flow-loss weight of the latent positions the world's objects cover (~8% of
    # them), times (1 - t). With a flat loss the textured background, 90% of the positions,
    # dominates: after 5k steps the tiny DiT drew backgrounds (95% of background claims) and objects
    # a quarter of the time, its error on the objects' positions 4x the mean over all of them
    # (held-out 0.507 vs 0.123). 8 gives the object positions about 40% of the loss near the data,
    # none at pure noise. 0 = the flat loss.
    object_weight: float = 8.0
    # The weight fades as (1 - t) ** object_weight_power. A weight that depends on where the objects
    # really are moves the loss's optimum towards "object" wherever x_t leaves that uncertain: the
    # model paints objects where there are none (measured: object cover 11.7% -> 19.0% of the frame
    # after 893 steps at power 1; the truth's 6.2%). A higher power keeps the weight near the data,
    # where x_t shows where the objects are, and drops it where x_t does not.
    object_weight_power: float = 1.0
    # The object weight of samples given frames (image-to-video, keyframes, extension); None: the
    # same as the others. Tried at 0 (the flat loss where known frames show what is there, 2026-12-07):
    # long videos kept fewer objects across segments (0/36 boundaries against 6/36), the objects grew
    # as before, and night skies were drawn as clouds in 10 of 35 prompts. So None.
    object_weight_keyed: float | None = None
    # DiT only: give extension samples their known latents after the trip generation makes (decoded
    # to uint8, encoded alone: controls.tail_latents) instead of the clip's own. Tried 2026-12-07:
    # one continuation then drew its objects at the truth's size (median 1.63x -> 1.14x), but long
    # videos kept fewer of them across segments (14/144 + 1/36 boundaries against 17/144 + 3/36), and
    # the decoder trained with weight_painted makes the trip small (1.06x). So off.
    extend_trip: bool = False
    # DiT only: training times drawn as SD3's shift of the logit-normal, t' = s t / (1 + (s - 1) t)
    # (the logit moved by ln s), so that more samples lie near noise. Starting the sampler from the
    # truth's latents noised to t0 (2026-12-07, 60 dev prompts: bench/claims_by_start_time.py) passed
    # 70% of claims from t0 = 0.3, 63% from 0.5, 45% from 0.7 and 26% from 1: the objects' layout,
    # decided above t = 0.5, is what the model gets wrong, and the logit-normal gives t > 0.8 one
    # sample in twelve. The held-out batch keeps s = 1, so its loss stays comparable. Tried at s = 2
    # (1600 steps from the shipped weights): the held-out loss fell 4-6% above t = 0.7 and rose 10% at
    # t = 0.1, and the claims did not follow (dev level, familiar -2.8 points; from the truth at
    # t0 = 0.7, 40% against 45%). So 1.
    t_shift: float = 1.0
    # DiT only: epochs over this many clips (0: every sample a new clip). Encoding a clip with the
    # frozen VAE costs about twice the DiT's forward and backward pass on it (the tiny presets, CPU):
    # later epochs reuse the first one's latents (~160 kB a clip, in memory and in the run
    # directory: train/latent_store.py), with new flow noise, time and caption dropout. A multiple
    # of the batch size.
    unique_clips: int = 0
    # DiT only: text-to-image samples added to every step, this many per video sample (Emu Video's
    # factorisation, Wan's and Open-Sora's joint image-video training): the first latent frame of
    # another of the fixed clips (`unique_clips`), with its caption, no controls, its own noise and
    # time, at a quarter of a video sample's tokens. Given the truth's first frame the shipped model
    # passed 54.8% of the dev claims, given its own 28%: laying the scene out from the text is the
    # bottleneck, and these samples train that alone. Tried at 3 (480 steps from the shipped weights,
    # 2026-12-07): the image loss fell, the image-first dev claims fell (26.6% against 33.5% on 75
    # prompts). 0 = none.
    images_per_sample: int = 0
    # DiT only: every sample a text-to-image sample (the first latent frame of a clip, its caption, no
    # controls): a text-to-image model for the image stage (SampleConfig.image_first), trained apart
    # from the video model, whose weights it starts from, so that the video samples lose nothing
    # (exported as the model's image.safetensors). Tried (600 steps of 64 from the shipped weights,
    # 2026-12-07): the held-out image loss fell 0.324 -> 0.101, the blobs a frame 4.2 -> 2.2, and the
    # dev claims 33.7% -> 28.4% (docs/BENCHMARKS.md, "The image stage on a text-to-image DiT").
    image_only: bool = False
    # VAE only: train the decoder alone, the encoder (and so the latent space) frozen.
    freeze_encoder: bool = False
    bf16: bool = True  # autocast where the device supports it
    activation_checkpointing: bool = False
    log_every: int = 50
    ckpt_every_s: float = 180.0  # atomic checkpoints every few minutes (wall clock)
    seed: int = 0
    num_workers: int = 1  # DataLoader workers rendering the world (300 clips/s each: one is plenty)
    eval_every: int = 500  # steps between held-out evaluations (VAE: PSNR; DiT: validation loss)
    eval_clips: int = 16
    # VAE only: train on random crops (the VAE is convolutional and its norms per voxel, so a crop
    # trains it exactly as the full frame does, at a fraction of the cost). 0 = the full clip.
    # Not in time, by default: the causal convs' temporal receptive field spans the clip, and 8-frame
    # crops left the last frames of 16-frame clips visibly off in color (measured).
    crop_size: int = 32
    crop_frames: int = 0


PRESETS: dict[str, dict[str, Any]] = {
    # The CPU default: trained on the procedural world on 2 cores, shipped in the repository.
    # The VAE through which the shipped DiT was trained had 1 res block per stage (its config.json
    # says so); the preset's deeper VAE starts from it (CausalVAE.widen_state) and is being trained.
    "tiny": dict(
        vae=dict(blocks_per_stage=2, decoder_blocks_per_stage=3),
        dit=dict(dim=256, depth=8, heads=4, cond_channels=22, camera_rope=True),
    ),
    # Candidate (2026-12-07): the tiny model at 12 blocks, grown from the shipped 8 (DiT.deepen: the
    # new blocks start as the identity). The claims are capped by drawing shapes from noise, not by
    # reading the prompt (docs/BENCHMARKS.md, "A token refiner"): capacity is the next thing to try.
    "tiny-deep": dict(
        vae=dict(blocks_per_stage=2, decoder_blocks_per_stage=3),
        dit=dict(dim=256, depth=12, heads=4, cond_channels=22, camera_rope=True),
    ),
    # Candidate (2026-12-07): the tiny model with a 2-block token refiner (model/text_refiner.py).
    "tiny-refine": dict(
        vae=dict(blocks_per_stage=2, decoder_blocks_per_stage=3),
        dit=dict(dim=256, depth=8, heads=4, cond_channels=22, camera_rope=True, text_refiner=2),
    ),
    # Candidate (2026-12-06, fourth session): the tiny model reading color names' RGB beside the
    # MiniLM states (text_colors.py), which place "emerald" nearer "amber" than "green".
    "tiny-color": dict(
        vae=dict(blocks_per_stage=2, decoder_blocks_per_stage=3),
        dit=dict(dim=256, depth=8, heads=4, cond_channels=22, text_dim=388),
        text=dict(color_features=True),
    ),
    # Candidate latent format (2026-12-06): twice the latent channels. At 4x4x4 compression the
    # 16-channel VAE rounds 6-pixel shapes into blobs (the dev suite through it: 53.5% of claims).
    "tiny-c32": dict(
        vae=dict(latent_channels=32, blocks_per_stage=2, decoder_blocks_per_stage=3),
        dit=dict(in_channels=32, dim=256, depth=8, heads=4, cond_channels=38),
    ),
    # Candidate latent format (2026-12-06, fourth session): half the spatial compression, half the
    # channels (64x64x16 -> 8 x 32x32x4: 6x compression, 12x before). The 4x VAE caps the dev suite
    # at 63.5% of claims because 6-pixel shapes are 1.5 latent pixels. (1,4,4) patches keep the DiT
    # at 256 tokens. Its VAE starts from the 4x one's convs (CausalVAE.widen_state).
    "tiny-s2": dict(
        vae=dict(latent_channels=8, spatial_down=2, blocks_per_stage=2, decoder_blocks_per_stage=3),
        dit=dict(in_channels=8, patch_size=(1, 4, 4), dim=256, depth=8, heads=4, cond_channels=14),
    ),
    # Tests: seconds to build and run.
    "test": dict(
        width=32,
        height=32,
        frames=8,
        vae=dict(base_channels=8, latent_channels=4, channel_mult=(1, 2, 2)),
        dit=dict(in_channels=4, dim=32, depth=2, heads=2, cond_channels=10, camera_rope=True),
    ),
    # GPU configs (same code; torchrun + FSDP2). Sizes are the DiT's parameter counts, measured
    # (a block is ~22 dim^2: self-attention 4, cross-attention 4, MLP 8, adaLN 6).
    "small": dict(  # 134M
        width=256,
        height=256,
        frames=32,
        dit=dict(dim=768, depth=10, heads=12, cond_channels=22, camera_rope=True),
    ),
    "base": dict(  # 593M
        width=512,
        height=512,
        frames=64,
        dit=dict(dim=1152, depth=20, heads=16, cond_channels=22, camera_rope=True),
    ),
    "large": dict(  # 1.15B
        width=512,
        height=512,
        frames=64,
        dit=dict(dim=1536, depth=22, heads=24, cond_channels=22, camera_rope=True),
    ),
}

T = TypeVar("T")


def _build(cls: type[T], values: dict[str, Any]) -> T:
    """A (nested) config dataclass from plain values; JSON lists become tuples, unknown keys fail."""
    kwargs = {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"{cls.__name__} has no field {key!r}")
        sub = {"vae": VAEConfig, "dit": DiTConfig, "text": TextConfig}.get(key)
        if sub is not None and cls is ModelConfig:
            value = _build(sub, value) if isinstance(value, dict) else value
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def preset(name: str) -> ModelConfig:
    """The ModelConfig of a named preset (see PRESETS)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return _build(ModelConfig, {"name": name, **PRESETS[name]})


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-ready values of a config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """The inverse of to_dict."""
    return _build(cls, values)


def save_json(config: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n")


def load_json(cls: type[T], path: str | Path) -> T:
    return from_dict(cls, json.loads(Path(path).read_text()))


# --- post-processing stages (issue 4): trained by the same loop, shipped in weights/post/ -------


@dataclass(frozen=True)
class InterpConfig:
    """Frame interpolation: (frame0, frame1, t) -> the frame at fraction t between them.

    Trained on world clips rendered at `truth_fps`, which the base rate and the output rate both
    divide (120 = 8 * 15 = 30 * 4), so every 30 fps in-between time has an exact ground truth."""

    name: str = "interp"
    width: int = 64
    height: int = 64
    base_fps: float = 8.0  # the pairs' spacing: the DiT's frame rate
    truth_fps: float = 120.0
    channels: tuple[int, ...] = (24, 48, 96)  # per encoder level; each level halves the resolution
    blocks: int = 2  # residual blocks at the coarsest level (1/8 resolution: the widest context)
    radius: int = 3  # matched motions: +-3 half-resolution pixels (+-6 px; +-8 matched worse)
    refine_channels: int = 16  # the full-resolution head that corrects the warped blend
    pairs_per_clip: int = 16  # training triplets drawn from each rendered clip (rendering dominates)
    # Fraction of training triplets blurred (all three frames alike): generated frames are a little
    # softer than renders, and the interpolator should neither sharpen nor break on them.
    degrade: float = 0.25


@dataclass(frozen=True)
class UpscaleConfig:
    """x`scale` super-resolution (ESPCN-style: convolutions at low resolution, a pixel shuffle at the
    end) as a residual over bicubic; trained on the same scenes rendered at both sizes."""

    name: str = "upscale"
    width: int = 64  # the low-resolution frame the world is rendered at for training
    height: int = 64
    scale: int = 4
    channels: int = 48
    blocks: int = 4  # 3x3 convolutions between the 5x5 input layer and the shuffle head
    crop: int = 32  # low-resolution training crop (the high-resolution target is scale x larger)
    frames_per_clip: int = 8  # training crops per rendered clip pair (4 frames: rendered at 2 fps)
    # Fraction of training inputs mildly blurred and noised: the DiT's frames pass through a VAE and
    # are softer than renders. The bar is measured on clean renders.
    degrade: float = 0.3
