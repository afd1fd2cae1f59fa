"""The DiT task: world clips -> frozen VAE latents (normalized), captions -> frozen text states,
rectified-flow loss on the velocity.

Caption dropout (for classifier-free guidance), the flow noise and the time t are drawn per sample
from (seed, index), as every random choice in tasks.py, so that torchrun ranks and resumed runs draw
the same numbers as one straight process. That is why the loss below composes flow.interpolate and
flow.target itself rather than calling flow.loss, which draws noise and t for the local batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mutoscope.config import ModelConfig, TrainConfig, from_dict, load_json, to_dict
from mutoscope.data.world_stream import to_model
from mutoscope.diffusion import flow
from mutoscope.model import DiT, controls
from mutoscope.text import CACHE_SIZE, TextEncoder
from mutoscope.text_colors import hide_colors
from mutoscope.train import checkpoint
from mutoscope.train.latent_store import LatentStore, fingerprint
from mutoscope.train.tasks import HELD_OUT_SEED, Batches, collate, sample_seed, world
from mutoscope.vae import CausalVAE, channels_last
from mutoscope.world.claims import ClaimType
from mutoscope.world.motion import (
    AXIS_LIMIT,
    camera_from_axes,
    camera_params,
    object_states,
    path_to_frame,
    scene_times,
)
from mutoscope.world.render import render_layers
from mutoscope.world.vocab import Camera


def load_vae(path: str | Path) -> CausalVAE:
    """A frozen VAE from an exported model directory (config.json + vae.safetensors, with its latent
    statistics) or from a VAE run directory (its EMA weights; latent statistics as in the run)."""
    return load_vae_with_config(path)[1]


def load_vae_with_config(path: str | Path) -> tuple[ModelConfig, CausalVAE]:
    """load_vae, with the model config the VAE was made for (its clip size and rate)."""
    path = Path(path)
    if (path / "vae.safetensors").is_file():
        from safetensors.torch import load_file

        model_cfg = load_json(ModelConfig, path / "config.json")
        vae = CausalVAE(model_cfg.vae)
        vae.load_state_dict(load_file(path / "vae.safetensors"))
    else:
        ckpt = checkpoint.load(path)
        if ckpt is None or ckpt.get("what") != "vae":
            raise ValueError(f"{path} is neither an exported model nor a VAE run")
        model_cfg = from_dict(ModelConfig, ckpt["model_cfg"])
        vae = CausalVAE(model_cfg.vae)
        vae.load_state_dict(ckpt["ema"])
    return model_cfg, channels_last(vae.eval().requires_grad_(False))


KEY_MODES = ("none", "first", "first_last", "last", "extend")
# Most samples keep no keyframe, so that the text stays the main source of what appears. Extension
# at 25% (12% until the ninth session of 2026-12-06, when long videos lost their objects).
KEY_PROBS = (0.5, 0.15, 0.06, 0.04, 0.25)
# An extension continues generated frames, which its training samples (a clip's own first latent
# frame) never show: the known latents are blurred by noise of a std drawn per clip in
# [0, EXTEND_NOISE] (normalized latents have unit std), so that the model learns to take the tail
# as evidence of what is there, not as pixels to repeat with their defects (SVD's conditioning
# augmentation). generate() gives the tail as it is.
EXTEND_NOISE = 0.25
# How many latent frames an extension sample is given (each equally likely): one (what a continuation
# has always been given: the last temporal_down frames), or two, which show how things move as well as
# what they are (SampleConfig.context picks one at generation).
EXTEND_CONTEXT = (1, 2)
# With color features (text_colors.py), the share of color names the text encoder does not see (it
# reads [MASK], the DiT the name's RGB): without it the encoder's states alone name every training
# color and the RGB would go unread.
HIDE_COLORS = 0.3
# Still, camera-silent clips given a random camera move as a control: the only samples where the
# control is the sole source of the move (0.35 left the camera control unlearned after 1160 steps).
CAMERA_OVERRIDE = 0.6


def draw_controls(rng: np.random.Generator, spec, text, cfg: ModelConfig, grid) -> tuple[Any, ...]:
    """Which controls sample draws, from the clip's own camera and objects (model/controls.py).

    Returns (camera path to render, ControlMaps without the brush / static maps yet, key mode)."""
    times = scene_times(spec, cfg.fps)
    says_camera = any(c.type is ClaimType.CAMERA for c in text.claims)
    path, given = None, rng.random() < 0.5
    if spec.camera is Camera.STATIC and not says_camera and rng.random() < CAMERA_OVERRIDE:
        # A move the caption does not mention: any mix of axes, at any strength the API allows.
        names = rng.choice(
            ("horizontal", "vertical", "zoom", "roll"), size=int(rng.integers(1, 3)), replace=False
        )
        axes = {str(n): float(rng.uniform(-AXIS_LIMIT, AXIS_LIMIT)) for n in names}
        path, given = camera_from_axes(axes, times), True
    path = camera_params(spec.camera, times) if path is None else path
    maps = controls.ControlMaps()
    if given:
        maps.camera = controls.camera_flow(path, grid, cfg.vae.temporal_down, cfg.width / cfg.height)
    key = KEY_MODES[int(rng.choice(len(KEY_MODES), p=KEY_PROBS))]
    return path, maps, key


def object_regions(rng, spec, path, alphas: np.ndarray, cfg: ModelConfig) -> list[controls.Region]:
    """Motion-brush regions from 1..5 of the clip's objects, moving ones first: each object's mask in
    frame 0 and its centre's path in frame units."""
    times = scene_times(spec, cfg.fps)
    aspect = cfg.width / cfg.height
    regions = []
    for n, obj in enumerate(spec.objects):
        st = object_states(obj, times)
        fx, fy = path_to_frame(path, st.x, st.y)
        xy = np.stack([(fx - 0.5) / aspect + 0.5, fy], axis=-1)
        travel = float(np.abs(xy - xy[0]).max())
        regions.append((travel, controls.Region((alphas[n, 0] > 0.5).astype(np.float32), np.c_[times, xy])))
    regions.sort(key=lambda r: -r[0])
    k = int(rng.integers(1, min(controls.MAX_REGIONS, len(regions)) + 1))
    return [r for _, r in regions[:k]]


def static_mask(spec, alphas: np.ndarray, cfg: ModelConfig) -> np.ndarray:
    """Everything that does not move in a clip with a still camera: the frame minus (dilated) the
    area that moving objects sweep."""
    moving = alphas.max(axis=1) - alphas[:, 0] > 0.5  # (N, H, W): covered later, not at the start
    swept = (alphas.max(axis=1) * moving.any(axis=(1, 2))[:, None, None]).max(axis=0, initial=0.0)
    swept = torch.from_numpy(swept)[None, None]
    dilated = F.max_pool2d(swept, 5, stride=1, padding=2)[0, 0].numpy()
    return (dilated < 0.5).astype(np.float32)


def object_latents(alphas: np.ndarray, cfg: ModelConfig) -> torch.Tensor:
    """How much of each latent position the clip's objects cover, (1, T', H', W') in [0, 1]: their
    rendered coverage's maximum over the (time, y, x) block of pixels that the position encodes.
    Exact from the renderer, where a color test on the pixels would miss the white objects."""
    v = cfg.vae
    cover = torch.from_numpy(alphas.max(axis=0, initial=0.0))[None]  # (1, T, H, W)
    return F.max_pool3d(cover, (v.temporal_down, v.spatial_down, v.spatial_down))


def object_weighted_mean(
    err: torch.Tensor, objects: torch.Tensor, weight: float | torch.Tensor
) -> torch.Tensor:
    """The mean of err (B, C, T', H', W') with the positions weighted 1 + weight * objects
    (B, 1, T', H', W'): a weighted mean, so the loss keeps its scale whatever the objects' share.
    `weight` is one number or one a sample, (B, 1, 1, 1, 1)."""
    w = (1.0 + weight * objects).expand_as(err)
    return (w * err).sum() / w.sum()


def sample_frames(cfg: ModelConfig, tcfg: TrainConfig) -> int:
    """Frames a training sample shows: the clip, or for a text-to-image model (image_only) the clip's
    first temporal_down frames, which the causal VAE encodes to its first latent frame."""
    return cfg.vae.temporal_down if tcfg.image_only else cfg.frames


def given_frames(cond: torch.Tensor | None, x0: torch.Tensor) -> torch.Tensor:
    """(B,) bool: which of the latents x0 (B, C, T', h, w) are given frames (keyframes, extension), from
    the keyframe mask of their control maps cond (None: none is)."""
    if cond is None:
        return torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    return cond[:, x0.shape[1]].flatten(1).amax(1) > 0


class DiTSample:
    """A world clip, its caption (or "" with probability caption_dropout), flow noise and time, and
    the control inputs drawn for it (all off with `with_controls=False`).

    With `unique_clips` N, sample i shows clip i mod N: the clip, its caption and its controls are
    drawn from the clip's number; the caption dropout, noise and time from the sample's. Samples past
    the first N carry the clip's number instead of its frames: DiTTask reuses the first epoch's
    latents, the VAE encode being most of a step's cost.
    """

    def __init__(
        self, cfg: ModelConfig, tcfg: TrainConfig, seed: int, latent: tuple[int, ...], dropout: float,
        with_controls: bool = True, unique_clips: int = 0, hide_share: float = 0.0, t_shift: float = 1.0,
    ):  # fmt: skip
        self.stream, self.seed, self.latent, self.dropout = world(cfg, seed), seed, latent, dropout
        self.t_shift = t_shift
        self.hide_share = hide_share if cfg.text.color_features else 0.0  # color names hidden
        self.cfg, self.unique = cfg, unique_clips
        self.frames = sample_frames(cfg, tcfg)
        self.with_controls = with_controls and cfg.dit.cond_channels > 0 and not tcfg.image_only
        self.images, self.batch = tcfg.images_per_sample if with_controls else 0, tcfg.batch_size
        if self.images and not unique_clips:
            raise ValueError("text-to-image samples (--images-per-sample) are drawn from --unique-clips")
        if self.images and tcfg.image_only:
            raise ValueError("--images-per-sample adds images to video samples; --image-only has none")
        self.image_latent = (latent[0], 1, *latent[2:])

    def __call__(self, index: int) -> dict[str, Any]:
        clip = index % self.unique if self.unique else index
        scene = self.stream.scene(clip)
        item = self.flow_inputs(scene[1].text, index, self.latent)
        if self.images:
            item |= self.image_inputs(index)
        if self.unique and index >= self.unique:
            return item | {"clip": torch.tensor(clip)}
        return item | self.clip_inputs(clip, scene)

    def flow_inputs(self, caption: str, index: int, latent: tuple[int, ...], salt: int = 0) -> dict[str, Any]:
        """A sample's caption (or "" with probability caption_dropout), flow noise of `latent`'s shape
        and time, drawn from (seed, index, salt)."""
        rng = np.random.default_rng(sample_seed(self.seed, index, 3 + salt))
        caption = "" if rng.random() < self.dropout else caption
        caption = hide_colors(caption, rng, self.hide_share)
        gen = torch.Generator().manual_seed(sample_seed(self.seed, index, 4 + salt))
        t = flow.shift_t(flow.sample_t(1, gen)[0], self.t_shift)
        return {"caption": caption, "t": t, "noise": torch.randn(latent, generator=gen)}

    def image_inputs(self, index: int) -> dict[str, Any]:
        """Sample `index`'s text-to-image samples: the first latent frames of `images` other clips,
        spread over the fixed clips so that each is an image `images` times an epoch. Their offsets
        are whole batches, so they fall in this rank's share of the clips (LatentStore's `keeps`)."""
        batches = self.unique // self.batch
        clips = [(index + (j + 1) * batches // (self.images + 1) * self.batch) % self.unique
                 for j in range(self.images)]  # fmt: skip
        made = [self.flow_inputs(self.stream.scene(c)[1].text, index * self.images + j, self.image_latent, 10)
                for j, c in enumerate(clips)]  # fmt: skip
        return {"image_clip": torch.tensor(clips), "image_caption": [m["caption"] for m in made],
                "image_t": torch.stack([m["t"] for m in made]),
                "image_noise": torch.stack([m["noise"] for m in made])}  # fmt: skip

    def clip_inputs(self, clip: int, scene=None) -> dict[str, Any]:
        """What a sample takes from its clip alone: the frames (rendered with the drawn camera), where
        the objects are, and the control maps (the keyframes' latents still to fill in)."""
        cfg = self.cfg
        spec, text = scene or self.stream.scene(clip)
        grid, td = self.latent[-2:], cfg.vae.temporal_down
        cond_shape = (self.latent[1], *grid)
        key, path, maps = "none", None, controls.ControlMaps()
        if self.with_controls:
            ctl = np.random.default_rng(sample_seed(self.seed, clip, 5))
            path, maps, key = draw_controls(ctl, spec, text, cfg, grid)
        frames, alphas = render_layers(spec, cfg.width, cfg.height, cfg.fps, camera=path)
        frames, alphas = frames[: self.frames], alphas[:, : self.frames]
        if self.with_controls and len(spec.objects) and ctl.random() < 0.3:
            regions = object_regions(ctl, spec, path, alphas, cfg)
            maps.brush = controls.brush_map(regions, cfg.frames, cfg.fps, grid, td)
        still_camera = path is None or all(np.allclose(a, a[0]) for a in path)
        if self.with_controls and still_camera and ctl.random() < 0.15:
            maps.static = controls.static_map(static_mask(spec, alphas, cfg), grid)
        item = {"clip": torch.tensor(clip), "video": to_model(torch.from_numpy(frames)),
                "objects": object_latents(alphas, cfg)}  # fmt: skip
        if cfg.dit.cond_channels:
            item["cond"] = maps.tensor(cfg.dit.cond_channels, cond_shape)
            item["key"] = torch.tensor(KEY_MODES.index(key))
            item["stills"] = torch.from_numpy(frames[[0, -1]])  # first and last frame, uint8
        return item


class DiTTask:
    def __init__(
        self, cfg: ModelConfig, tcfg: TrainConfig, rank: int, world_size: int, vae_path: str | Path,
        run_dir: str | Path | None = None,
    ):  # fmt: skip
        self.vae = load_vae(vae_path)
        if self.vae.cfg != cfg.vae:
            raise ValueError("the model config's VAE differs from the VAE at --vae (use its config.json)")
        if cfg.dit.in_channels != cfg.vae.latent_channels:
            raise ValueError(f"DiT in_channels {cfg.dit.in_channels} != VAE latent channels")
        self.cfg, self.tcfg = cfg, tcfg
        # Every clip's caption stays cached over the epochs (~30 kB each), with the empty one.
        self.text_cache = max(CACHE_SIZE, tcfg.unique_clips + 1)
        self.text = TextEncoder(cfg.text, cache_size=self.text_cache)
        self.text.check_reader(cfg.dit.text_dim)
        self.model = DiT(cfg.dit)
        latent = self.vae.latent_shape(sample_frames(cfg, tcfg), cfg.height, cfg.width)
        unique = tcfg.unique_clips
        if unique < 0 or unique % tcfg.batch_size:
            raise ValueError(f"unique clips {unique} are not a multiple of the batch {tcfg.batch_size}")
        self.make = DiTSample(cfg, tcfg, tcfg.seed, latent, tcfg.caption_dropout, unique_clips=unique,
                              hide_share=HIDE_COLORS, t_shift=tcfg.t_shift)  # fmt: skip
        self.data = Batches(self.make, tcfg.batch_size, rank, world_size)
        # The first epoch's inputs, kept for the later ones (in the run directory too, when given).
        self.cache = None
        if unique:
            # What the kept inputs are made of: the world's clip format, the VAE, the control channels
            # and the seed; not the DiT's other settings nor the text encoder (captions are encoded
            # every step), so a run that changes those keeps the latents.
            whole = to_dict(cfg)
            made_of = {k: whole[k] for k in ("width", "height", "frames", "fps", "vae")}
            made_of["cond_channels"] = cfg.dit.cond_channels
            if tcfg.image_only:  # first latent frames alone (a key of the same form as before otherwise)
                made_of["image_only"] = True
            key = fingerprint(
                json.dumps(made_of, sort_keys=True), str(tcfg.seed), state=self.vae.state_dict()
            )
            # Sample i shows clip i mod N, and N is a multiple of the batch: clip c keeps sample c's
            # place in every batch, so this rank draws it (every epoch) when it draws sample c.
            self.cache = LatentStore(
                None if run_dir is None else Path(run_dir) / f"latents-{key}", keeps=self.data.draws
            )
        # Held out without controls: the text-to-video loss, comparable with runs before the controls
        # (a text-to-image model's: the text-to-image loss).
        held = DiTSample(cfg, tcfg, HELD_OUT_SEED, latent, 0.0, with_controls=False)
        self.held_out = Batches(held, tcfg.eval_clips, 0, 1)[0]
        self.held_out_inputs = None  # its latents, encoded by the frozen VAE at the first evaluation

    def to(self, device: torch.device) -> DiTTask:
        self.model.to(device)
        self.vae.to(device)
        if device != self.text.device:
            self.text = TextEncoder(self.cfg.text, device=device, cache_size=self.text_cache)
        return self

    def frozen_state(self) -> dict[str, Any]:
        """The VAE this DiT learns the latents of, saved in every checkpoint for export."""
        return {"vae": {k: v.contiguous() for k, v in self.vae.state_dict().items()}}

    @torch.no_grad()
    def latents(self, video: torch.Tensor) -> torch.Tensor:
        """Normalized posterior means (B, Cz, T/4, H/4, W/4) of the frozen VAE."""
        mean, _ = self.vae.encode(video.contiguous(memory_format=torch.channels_last_3d))
        return self.vae.normalize(mean.float())

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = self.flow_loss(model, batch, *self.inputs(batch, self.cache))
        if "image_clip" not in batch:
            return loss, metrics
        # Text-to-image: the first latent frames of the kept clips (encoded here when not kept yet),
        # without controls, in a forward of their own (a quarter of a video's tokens each).
        images = {"clip": batch["image_clip"].flatten(), "t": batch["image_t"].flatten(),
                  "noise": batch["image_noise"].flatten(0, 1),
                  "caption": [c for row in batch["image_caption"] for c in row]}  # fmt: skip
        x0, _, objects = self.inputs(images, self.cache)
        x0 = x0[:, :, :1]
        cond = self.cfg.dit.cond_channels  # every control off, as a text-only DiT takes none
        off = x0.new_zeros(x0.shape[0], cond, *x0.shape[2:]) if cond else None
        image_loss, _ = self.flow_loss(model, images, x0, off, objects[:, :, :1])
        return loss + image_loss, metrics | {"image": image_loss.item()}

    def inputs(self, batch: dict[str, Any], cache: LatentStore | None) -> tuple[torch.Tensor, ...]:
        """(x0 latents, control maps or None, object cover) of the batch's clips: encoded from their
        frames (and kept in `cache`), or the kept ones: those of a later epoch, and of a first epoch
        that another run with the same store already encoded. A run resumed in a later epoch
        without its store renders and encodes again the clips it lacks."""
        clips = batch["clip"].tolist()
        if "video" in batch and (cache is None or not all(c in cache for c in clips)):
            x0 = self.latents(batch["video"])
            cond = self.keyframes(batch, x0) if "cond" in batch else None
            objects = batch["objects"].to(x0)
            if cache is not None:
                cache.put(clips, x0, cond, objects)
            return x0, cond, objects
        device = batch["clip"].device
        missing = [c for c in clips if c not in cache]
        if missing:
            with torch.autocast("cpu", enabled=False):  # made as the DataLoader made them (the brush maps)
                again = collate([self.make.clip_inputs(c) for c in missing])
            self.inputs({k: v.to(device) if torch.is_tensor(v) else v for k, v in again.items()}, cache)
        return cache.get(clips, device)

    def flow_loss(
        self, model: nn.Module, batch: dict[str, Any], x0: torch.Tensor, cond: torch.Tensor | None,
        objects: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
        text, mask = self.text.encode(batch["caption"])
        noise, t = batch["noise"].to(x0), batch["t"].to(x0)
        v = model(flow.interpolate(x0, noise, t), t, text, mask, cond)
        err = (v.float() - flow.target(x0, noise)).pow(2)  # (B, Cz, T', H', W')
        objects = objects.to(err)  # (B, 1, T', H', W')
        # Fading to 0 at pure noise: a weight that depends on the target (where the objects really
        # are) biases the optimum towards "object" wherever x_t leaves that uncertain, most near t = 1,
        # where it would paint objects everywhere; near the data x_t shows where they are.
        fade = (1 - t).pow(self.tcfg.object_weight_power).view(-1, 1, 1, 1, 1)
        plain = self.tcfg.object_weight
        keyed = plain if self.tcfg.object_weight_keyed is None else self.tcfg.object_weight_keyed
        weight = torch.where(given_frames(cond, x0), keyed, plain).view(-1, 1, 1, 1, 1)
        loss = object_weighted_mean(err, objects * fade, weight.to(err))
        on_objects = (objects * err).sum() / (objects.sum() * err.shape[1]).clamp_min(1e-6)
        return loss, {"flat": err.mean().item(), "objects": on_objects.item()}

    @torch.no_grad()
    def keyframes(self, batch: dict[str, Any], x0: torch.Tensor) -> torch.Tensor:
        """The batch's control maps with the keyframe latents filled in: still images are encoded by
        the frozen VAE (one batched call); an extension's first one or two latent frames are the clip's
        own (the causal VAE encodes the first chunks alone, exactly as generate() encodes the frames it
        extends; with extend_trip, after the trip through uint8 frames that generation makes:
        controls.tail_latents), blurred by noise (EXTEND_NOISE)."""
        cond = batch["cond"].to(x0).clone()
        modes = [KEY_MODES[int(k)] for k in batch["key"]]
        last = x0.shape[2] - 1
        wanted = [(b, 0, 0) for b, m in enumerate(modes) if m in ("first", "first_last")]
        wanted += [(b, 1, last) for b, m in enumerate(modes) if m in ("first_last", "last")]
        if wanted:
            images = torch.stack([batch["stills"][b, which] for b, which, _ in wanted])
            z = controls.still_latents(self.vae, to_model(images[:, None])[:, :, 0].to(x0))
            for (b, _, k), zk in zip(wanted, z, strict=True):
                controls.set_keyframes(cond[b], zk[:, None], [k])
        extends: dict[int, list[tuple[int, torch.Tensor]]] = {}  # context length -> [(sample, noise)]
        for b, m in enumerate(modes):
            if m == "extend":
                gen = torch.Generator().manual_seed(sample_seed(self.tcfg.seed, int(batch["clip"][b]), 6))
                std = EXTEND_NOISE * torch.rand((), generator=gen)
                n = EXTEND_CONTEXT[int(torch.randint(len(EXTEND_CONTEXT), (), generator=gen))]
                extends.setdefault(n, []).append((b, std * torch.randn(x0[b, :, :n].shape, generator=gen)))
        for n, samples in extends.items():
            known = x0[[b for b, _ in samples], :, :n]
            if self.tcfg.extend_trip:  # as generation gives them: decoded to uint8, encoded again
                known = controls.tail_latents(self.vae, known)
            for (b, noise), z in zip(samples, known, strict=True):
                controls.set_keyframes(cond[b], z + noise.to(z), list(range(n)))
        return cond

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast) -> dict[str, float]:
        """Flow loss on a fixed held-out batch with fixed noise and t (comparable across steps): over all
        latent positions and over the objects' alone."""
        model.eval()
        batch = {k: v.to(next(model.parameters()).device) if torch.is_tensor(v) else v
                 for k, v in self.held_out.items()}  # fmt: skip
        with autocast:
            # Encoded once: every evaluation (the EMA's and the raw weights') sees the same latents.
            if self.held_out_inputs is None:
                self.held_out_inputs = self.inputs(batch, cache=None)
            _, metrics = self.flow_loss(model, batch, *self.held_out_inputs)
        model.train()
        # "loss" stays the flat flow loss, comparable with the runs before the object weighting.
        return {"loss": metrics["flat"], "loss_objects": metrics["objects"]}
