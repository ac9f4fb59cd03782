"""Hidden cases for the exercises of §39.4 (fusion techniques)."""
from __future__ import annotations

import torch

from .core import Case, register


# ---------------------------------------------------------------- 39.4 FiLM
def _film_cases() -> list[Case]:
    from mmcourse.models import FiLM

    g = torch.Generator().manual_seed(394)
    hint = ("gamma is the first half of condition @ weight.T + bias, beta the second; reshape them "
            "to (B, 1, ..., 1, D) so that they broadcast over every position.")
    cases = []
    for feature_shape, cond_dim in (((2, 5, 8), 3), ((1, 4, 6), 6), ((3, 2, 2, 4), 5), ((4, 7), 2)):
        batch, dim = feature_shape[0], feature_shape[-1]
        film = FiLM(cond_dim, dim)
        with torch.no_grad():
            film.proj.weight.copy_(torch.randn(film.proj.weight.shape, generator=g))
            film.proj.bias.copy_(torch.randn(film.proj.bias.shape, generator=g))
            features = torch.randn(feature_shape, generator=g)
            condition = torch.randn(batch, cond_dim, generator=g)
            expected = film(features, condition)
        args = (features, condition, film.proj.weight.detach(), film.proj.bias.detach())
        describe = f"features {feature_shape}, condition ({batch}, {cond_dim})"
        cases.append(Case(args, expected, describe, hint=hint))
    return cases


register("39.4.film", _film_cases)


# ---------------------------------------------------------------- 39.4 GMU
def _gmu_cases() -> list[Case]:
    from mmcourse.models import GatedMultimodalUnit

    g = torch.Generator().manual_seed(3941)
    hint = ("z = sigmoid([a; b] @ W_z.T) concatenates a and b along the last axis (expand both "
            "to their common leading shape first); h = z * tanh(a @ W_a.T) "
            "+ (1 - z) * tanh(b @ W_b.T).")
    cases = []
    settings = (((2, 5), (2, 3), 4), ((3, 4, 6), (3, 1, 2), 5), ((1, 1), (1, 1), 1))
    for shape_a, shape_b, dim in settings:
        gmu = GatedMultimodalUnit(shape_a[-1], shape_b[-1], dim)
        with torch.no_grad():
            for p in gmu.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            a, b = torch.randn(shape_a, generator=g), torch.randn(shape_b, generator=g)
            expected = gmu(a, b)
        weights = (gmu.proj_a.weight.detach(), gmu.proj_b.weight.detach(), gmu.gate.weight.detach())
        cases.append(Case((a, b) + weights, expected, f"a {shape_a}, b {shape_b}, dim={dim}",
                          hint=hint))
    return cases


register("39.4.gmu", _gmu_cases)


# ---------------------------------------------------------------- 39.4 Flamingo's gated block
def _gated_block_cases() -> list[Case]:
    from mmcourse.models import GatedCrossAttentionBlock

    g = torch.Generator().manual_seed(3942)
    hint = ("x = x + tanh(attn_gate) * block.attn(block.norm1(x), media)[0], then "
            "x = x + tanh(ff_gate) * block.mlp(block.norm2(x)): the second norm sees the new x.")
    settings = (((2, 5, 3, 8, 2), (0.0, 0.0)), ((1, 4, 6, 12, 3), (0.7, -0.4)),
                ((3, 2, 1, 8, 4), (2.0, 0.3)))
    cases = []
    for (batch, n, m, dim, heads), gates in settings:
        torch.manual_seed(int(torch.randint(0, 10_000, (), generator=g)))
        block = GatedCrossAttentionBlock(dim, heads, 2 * dim).eval()
        with torch.no_grad():
            block.attn_gate.fill_(gates[0])
            block.ff_gate.fill_(gates[1])
            x = torch.randn(batch, n, dim, generator=g)
            media = torch.randn(batch, m, dim, generator=g)
            expected = block(x, media)[0]
        describe = f"x ({batch}, {n}, {dim}), media ({batch}, {m}, {dim}), gates {gates}"
        cases.append(Case((x, media, block), expected, describe, hint=hint))
    return cases


register("39.4.gated_block", _gated_block_cases)
