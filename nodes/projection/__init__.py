"""Projection heads: numpy inference (hot path) and torch training (offline, `train`)."""
from .heads import HeadConfig, ProjectionHead, load_heads, save_heads

__all__ = ["HeadConfig", "ProjectionHead", "load_heads", "save_heads"]
