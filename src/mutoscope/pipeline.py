"""A loaded model: `load_model()` reads a model directory (or builds a preset's random model) once,
for generate() to use many times; `save_model()` writes one. A model directory holds config.json (a
ModelConfig), dit.safetensors and vae.safetensors, plus an optional sample.json (the SampleConfig
defaults the model was tuned with) and an optional image.safetensors: a DiT of the same config trained
on text-to-image samples alone (TrainConfig.image_only), which samples the image stage
(SampleConfig.image_first) in place of the video DiT.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mutoscope.config import ModelConfig, SampleConfig, load_json, save_json
from mutoscope.config import preset as preset_config
from mutoscope.errors import UserError
from mutoscope.hardware import bf16_default
from mutoscope.model import DiT
from mutoscope.text import TextEncoder
from mutoscope.vae import CausalVAE, channels_last

DEFAULT_MODEL = Path(__file__).parent / "weights" / "tiny"


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
    image_dit: DiT | None = None  # the image stage's DiT (image.safetensors); None: the video DiT

    @property
    def image_model(self) -> DiT:
        """The DiT that samples the image stage."""
        return self.dit if self.image_dit is None else self.image_dit


def weights_hash(*modules: torch.nn.Module) -> str:
    """Short sha256 over the modules' parameters and buffers (names and bytes, in order)."""
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy())
    return h.hexdigest()[:8]


def load_model(path: str | Path | None = None, *, preset: str | None = None, device: str = "cpu",
               bf16: bool | None = None) -> Pipeline:  # fmt: skip
    """The shipped default (no arguments), a model directory (`path`) or a random model of a preset."""
    start = time.perf_counter()
    dev = torch.device(device)
    image_dit = None
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
        if (directory / "image.safetensors").is_file():
            image_dit = DiT(cfg.dit)
            image_dit.load_state_dict(image_dit.widen_state(load_file(directory / "image.safetensors")))
        has_sample = (directory / "sample.json").is_file()
        sample = load_json(SampleConfig, directory / "sample.json") if has_sample else SampleConfig()
    dit, vae = (m.to(dev).eval().requires_grad_(False) for m in (dit, vae))
    if image_dit is not None:
        image_dit = image_dit.to(dev).eval().requires_grad_(False)
    text = TextEncoder(cfg.text, device=dev)
    try:
        text.check_reader(cfg.dit.text_dim)
    except ValueError as e:
        raise UserError("model.config", str(e)) from None
    # Of the weights as stored (fp32); a model without an image DiT keeps the id it always had.
    model_id = f"{cfg.name}-{weights_hash(*(m for m in (dit, vae, image_dit) if m is not None))}"
    use_bf16 = bf16_default(dev) if bf16 is None else bf16
    if use_bf16:
        # bf16 copies of the weights rather than autocast: without autograd, autocast re-casts every
        # weight on every call (a third of the DiT's step time here). Measured on this CPU, one thread:
        # DiT forward 165 -> 75 ms, VAE decode 820 -> 100 ms, final latents within 1% of fp32.
        dit, vae = dit.to(torch.bfloat16), vae.to(torch.bfloat16)
        image_dit = None if image_dit is None else image_dit.to(torch.bfloat16)
    vae = channels_last(vae)  # oneDNN's fast conv3d layout
    load_s = time.perf_counter() - start
    return Pipeline(cfg, text, dit, vae, model_id, sample, dev, use_bf16, load_s, image_dit)


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
