"""Transformer building blocks: activations, the MLP and the pre-norm encoder block.

Built in §39.1 for the Vision Transformer; CLIP (§40.1), Whisper (§41.1) and VideoMAE (§41.4) reuse them.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .attention import MultiHeadAttention


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the GELU approximation OpenAI's CLIP was trained with. Built in §39.1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


#: activation name, spelled as in ``transformers``' ``hidden_act`` -> a function making the module
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,  # exact: x * Phi(x)
    "gelu_new": lambda: nn.GELU(approximate="tanh"),  # the tanh approximation (GPT-2, BERT's original code)
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),  # the same, under SigLIP's name
    "quick_gelu": QuickGELU,
    "relu": nn.ReLU,
}


def make_activation(name: str) -> nn.Module:
    """The activation module called ``name`` (a key of ``ACTIVATIONS``). Built in §39.1."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}, expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """The transformer's position-wise feed-forward network: Linear -> activation -> Linear.

    (B, N, dim) -> (B, N, hidden_dim) -> (B, N, dim). Built in §39.1.
    """

    def __init__(self, dim: int, hidden_dim: int, activation: str = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = make_activation(activation)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (B, N, D) -> (B, N, hidden) -> (B, N, D)


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block (ViT, CLIP, Whisper's encoder):

    ``x = x + attn(norm1(x))`` then ``x = x + mlp(norm2(x))``; (B, N, dim) -> (B, N, dim). Built in §39.1.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, activation: str = "gelu", layer_norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = MLP(dim, mlp_dim, activation)

    def forward(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None = None, return_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the block's output (B, N, D) and the attention weights (B, heads, N, N) if
        ``return_attention`` (else None); ``attention_mask`` is as in ``MultiHeadAttention``."""
        attended, weights = self.attn(self.norm1(x), attention_mask, return_attention)
        x = x + attended
        x = x + self.mlp(self.norm2(x))
        return x, weights
