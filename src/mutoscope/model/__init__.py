"""The backbone: a diffusion transformer over video latent patches (see dit.py, attention.py)."""

from mutoscope.model.dit import DiT, DiTBlock

__all__ = ["DiT", "DiTBlock"]
