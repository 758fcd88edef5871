"""Projection heads: numpy inference (hot path, ``heads``) and their torch training step
(offline, ``train``; its configuration ``train_config`` is plain data)."""
from .heads import HeadConfig, ProjectionHead, load_heads, save_heads

__all__ = ["HeadConfig", "ProjectionHead", "load_heads", "save_heads"]
