"""Multi-head self-attention.

Built in §39.1 for the Vision Transformer; CLIP (§40.1), Whisper (§41.1) and VideoMAE (§41.4) reuse it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product self-attention.

    ``softmax(q k^T / sqrt(d_head) + mask) v`` computed in ``num_heads`` heads of ``dim // num_heads``
    channels each, with separate ``q_proj``, ``k_proj``, ``v_proj`` (all with bias) and an output
    projection ``out_proj``, so that the attention weights of ``transformers`` models map onto it one to
    one. Input and output are ``(B, N, dim)``. Built in §39.1.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim must be divisible by num_heads, got dim={dim} and num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None = None, return_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from every token of ``x`` (B, N, D) to every token of ``x``.

        ``attention_mask`` is a bool tensor broadcastable to (B, heads, N, N), True where a query may
        attend to a key: (B, 1, 1, N) masks padding, (N, N) lower-triangular makes attention causal. A
        query that may attend to no key spreads its attention uniformly rather than giving NaN.

        Returns the output (B, N, D) and, if ``return_attention``, the attention weights
        (B, heads, N, N) whose rows sum to 1 (else None).
        """
        batch, length, dim = x.shape
        # (B, N, D) -> (B, heads, N, head_dim)
        q, k, v = (
            proj(x).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        bias = None if attention_mask is None else mask_to_bias(attention_mask, x.dtype)
        if return_attention:
            scores = q @ k.transpose(-2, -1) * self.head_dim**-0.5  # (B, heads, N, N)
            if bias is not None:
                scores = scores + bias
            weights = scores.softmax(dim=-1)
            out = weights @ v  # (B, heads, N, N) @ (B, heads, N, head_dim) -> (B, heads, N, head_dim)
        else:  # the same computation in one fused kernel, faster and lighter in memory
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(batch, length, dim)  # (B, heads, N, head_dim) -> (B, N, D)
        return self.out_proj(out), weights


def mask_to_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Turn a bool mask (True = may attend) into an additive bias: 0 where allowed, the most negative
    value of ``dtype`` where not. The shape is unchanged. Built in §39.1."""
    if attention_mask.dtype != torch.bool:
        raise ValueError(f"expected a bool attention_mask (True = may attend), got dtype {attention_mask.dtype}")
    bias = torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~attention_mask, torch.finfo(dtype).min)
