"""Building blocks shared by the book's models: attention, transformer blocks, patch embedding.

Built in §39.1.
"""
from .attention import MultiHeadAttention, mask_to_bias
from .blocks import ACTIVATIONS, MLP, EncoderBlock, QuickGELU, make_activation
from .patch import PatchEmbedding, patchify

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "EncoderBlock",
    "MultiHeadAttention",
    "PatchEmbedding",
    "QuickGELU",
    "make_activation",
    "mask_to_bias",
    "patchify",
]
