"""Hidden cases for the exercises of §40.4 (connecting vision to a language model)."""
from __future__ import annotations

import torch

from .core import Case, register


# ------------------------------------------------------------ 40.4 rotary embeddings, interleaved
def _rope_reference(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """The RoFormer convention as complex multiplication: channels (2i, 2i + 1) are one complex
    number, multiplied by exp(1j * m * theta ** (-2i / d)) at position m."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    rotation = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64),
                           positions.double()[:, None] * freqs)  # (L, d/2) complex
    pairs = torch.view_as_complex(x.double().reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(pairs * rotation).reshape(x.shape).to(x.dtype)


def _rope_cases() -> list[Case]:
    g = torch.Generator().manual_seed(404)
    cases = []
    for batch, heads, length, dim, theta, offset in ((1, 1, 4, 2, 10000.0, 0),
                                                     (2, 3, 7, 8, 10000.0, 0),
                                                     (1, 2, 5, 16, 500000.0, 11),
                                                     (3, 1, 6, 6, 100.0, 3)):
        x = torch.randn(batch, heads, length, dim, generator=g)
        positions = torch.arange(offset, offset + length)
        cases.append(Case((x, positions, theta), _rope_reference(x, positions, theta),
                          f"x of shape {(batch, heads, length, dim)}, positions {offset}.."
                          f"{offset + length - 1}, theta {theta:g}",
                          hint="pair i is channels 2i and 2i + 1 (x[..., 0::2] and x[..., 1::2]), "
                               "its angle is position * theta ** (-2i / d); rotate each pair and "
                               "put the two results back side by side, not in two halves"))
    return cases


register("40.4.rope", _rope_cases, atol=1e-4)


# ------------------------------------------------------------ 40.4 grouped-query attention
def _repeat_kv_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4041)
    cases = []
    for batch, kv_heads, length, dim, groups in ((1, 1, 3, 2, 4), (2, 2, 5, 4, 2),
                                                 (1, 3, 4, 8, 1), (3, 4, 2, 3, 3)):
        kv = torch.randn(batch, kv_heads, length, dim, generator=g)
        expected = torch.stack([kv[:, h // groups] for h in range(kv_heads * groups)], dim=1)
        cases.append(Case((kv, groups), expected,
                          f"{kv_heads} key/value heads of shape {(batch, length, dim)}, "
                          f"groups of {groups}",
                          hint="query head h reads key/value head h // groups: each key/value head "
                               "is repeated `groups` times in a row (repeat_interleave along the "
                               "head dimension, not repeat)"))
    return cases


register("40.4.repeat_kv", _repeat_kv_cases)
