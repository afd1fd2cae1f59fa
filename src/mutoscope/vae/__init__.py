"""The causal video autoencoder (see model.py)."""

from mutoscope.vae.model import CausalVAE, channels_last, vae_loss

__all__ = ["CausalVAE", "channels_last", "vae_loss"]
