"""Rectified flow (flow.py) and its pure-function samplers with classifier-free guidance (sampling.py)."""
