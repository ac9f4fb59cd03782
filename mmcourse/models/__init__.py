"""The book's models, written from scratch in plain PyTorch.

Built chapter by chapter, starting with the ViT in §39.1.
"""
from .vit import ViT, ViTConfig, ViTOutput

__all__ = ["ViT", "ViTConfig", "ViTOutput"]
