"""Hidden cases for the exercises of chapter 39."""
from __future__ import annotations

from collections import Counter

import torch

from .core import Case, register


# ---------------------------------------------------------------- 39.1 patchify
def _patchify_cases() -> list[Case]:
    from mmcourse.nn import patchify

    g = torch.Generator().manual_seed(391)
    cases = []
    for shape, p in (((1, 3, 8, 8), 4), ((2, 3, 12, 12), 4), ((3, 1, 6, 6), 2), ((2, 3, 16, 16), 8)):
        x = torch.randn(shape, generator=g)
        cases.append(Case((x, p), patchify(x, p), f"images of shape {shape}, patch_size={p}",
                          hint="patches go row by row (left to right, then down); inside a patch, "
                               "flatten as (C, p, p) so a Conv2d kernel reshaped to (D, C*p*p) matches."))
    return cases


register("39.1.patchify", _patchify_cases)


# ---------------------------------------------------------------- 39.1 one BPE merge
def bpe_step_reference(words: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """Merge the most frequent adjacent pair of symbols everywhere (ties: the smallest pair)."""
    pairs: Counter = Counter()
    for symbols, freq in words.items():
        for a, b in zip(symbols, symbols[1:]):
            pairs[(a, b)] += freq
    if not pairs:
        return dict(words)
    best = max(pairs.values())
    a, b = min(p for p, c in pairs.items() if c == best)
    merged: dict[tuple[str, ...], int] = {}
    for symbols, freq in words.items():
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        merged[tuple(out)] = merged.get(tuple(out), 0) + freq
    return merged


def _bpe_cases() -> list[Case]:
    inputs = [
        {("r", "e", "d"): 5, ("r", "e", "d", "s"): 2, ("b", "e", "d"): 3},
        {("s", "t", "a", "r"): 4, ("s", "t", "a", "r", "s"): 1, ("s", "q", "u", "a", "r", "e"): 3},
        {("a", "a", "a"): 2, ("b", "c"): 1},  # overlapping pairs: merge left to right
        {("x", "y"): 1, ("y", "x"): 1},  # a tie: the smaller pair ("x", "y") wins
        {("o",): 7},  # nothing to merge
    ]
    hint = ("count each adjacent pair weighted by the word's frequency; break ties with the smallest "
            "pair (min over tuples); merge left to right without overlapping.")
    return [Case((dict(w),), bpe_step_reference(w), f"words={w}", hint=hint) for w in inputs]


register("39.1.bpe_step", _bpe_cases)


# ---------------------------------------------------------------- 39.1 counting ViT parameters
def _vit_param_cases() -> list[Case]:
    from mmcourse.models import ViT, ViTConfig
    from mmcourse.utils import count_parameters

    settings = [
        dict(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
             num_attention_heads=4, intermediate_size=64, add_pooling_layer=False),
        dict(image_size=64, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=4,
             num_attention_heads=4, intermediate_size=256, add_pooling_layer=True),
        dict(image_size=224, patch_size=16, num_channels=3, hidden_size=768, num_hidden_layers=12,
             num_attention_heads=12, intermediate_size=3072, add_pooling_layer=True),
    ]
    cases = []
    for s in settings:
        n = count_parameters(ViT(ViTConfig(**s)))
        cases.append(Case((), n, ", ".join(f"{k}={v}" for k, v in s.items()), kwargs=dict(s),
                          hint="add up the patch projection (weights and bias), the CLS token, the "
                               "position embeddings, per layer two LayerNorms, q/k/v/output projections "
                               "and the two MLP layers, then the final LayerNorm and the pooler."))
    return cases


register("39.1.vit_params", _vit_param_cases, atol=0.0)
