"""Datasets: the world stream (sharded across DataLoader workers and ranks)."""
