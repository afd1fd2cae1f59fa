"""Training: one loop for the VAE and the DiT (loop.py), its tasks, checkpoints, distribution, export."""
