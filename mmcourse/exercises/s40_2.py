"""Hidden cases for the exercises of §40.2 (encoder-decoder captioning)."""
from __future__ import annotations

import torch

from .core import Case, register


# ---------------------------------------------------------------- 40.2 soft attention
def _soft_attention_cases() -> list[Case]:
    from mmcourse.models import SoftAttention

    g = torch.Generator().manual_seed(402)
    hint = ("e = score(tanh(feature_proj(features) + query_proj(query)[:, None])).squeeze(-1); "
            "set e to -inf where mask is False before the softmax over features; the context is "
            "sum_i alpha_i * features_i, shape (B, F).")
    cases = []
    for batch, n, dim, query_dim, att_dim, masked in ((2, 5, 4, 3, 6, False), (3, 7, 8, 5, 4, True),
                                                      (1, 1, 2, 2, 3, False), (4, 3, 6, 6, 5, True)):
        attention = SoftAttention(dim, query_dim, att_dim)
        with torch.no_grad():
            for p in attention.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            features = torch.randn(batch, n, dim, generator=g)
            query = torch.randn(batch, query_dim, generator=g)
            mask = torch.ones(batch, n, dtype=torch.bool)
            if masked:
                mask[:, n // 2:] = torch.rand(batch, n - n // 2, generator=g) < 0.5
                mask[:, 0] = True
            context, _ = attention(attention.feature_proj(features), features, mask, query)
        describe = f"features ({batch}, {n}, {dim}), query ({batch}, {query_dim})" + (
            ", some features masked" if masked else "")
        cases.append(Case((features, mask, query, attention), context, describe, hint=hint))
    return cases


register("40.2.soft_attention", _soft_attention_cases)


# ---------------------------------------------------------------- 40.2 doubly stochastic penalty
def _penalty_cases() -> list[Case]:
    from mmcourse.models import doubly_stochastic_penalty

    g = torch.Generator().manual_seed(4021)
    hint = ("sum alpha over the steps where step_mask is True, giving (B, N); then "
            "(1 - total) ** 2 summed over the N features and averaged over the batch.")
    cases = []
    for batch, steps, n in ((2, 4, 3), (3, 6, 9), (1, 1, 1), (5, 3, 16)):
        alphas = torch.rand(batch, steps, n, generator=g).softmax(-1)
        lengths = torch.randint(1, steps + 1, (batch,), generator=g)
        step_mask = torch.arange(steps)[None] < lengths[:, None]
        expected = float(doubly_stochastic_penalty(alphas, step_mask))
        cases.append(Case((alphas, step_mask), expected,
                          f"alphas ({batch}, {steps}, {n}), lengths {lengths.tolist()}", hint=hint))
    return cases


register("40.2.doubly_stochastic", _penalty_cases)


# ---------------------------------------------------------------- 40.2 one beam-search step
def _beam_step_cases() -> list[Case]:
    from mmcourse.models import beam_step

    g = torch.Generator().manual_seed(4022)
    hint = ("add scores[..., None] to log_probs, flatten the last two axes to K * V candidates, "
            "take the top n; candidate c continues beam c // V with token c % V: gather that "
            "beam's sequence and append the token.")
    cases = []
    for batch, beams, vocab, length, n in ((1, 2, 5, 3, 2), (3, 4, 7, 2, 8), (2, 1, 4, 0, 3),
                                           (2, 3, 6, 5, 3)):
        sequences = torch.randint(0, vocab, (batch, beams, length), generator=g)
        scores = -torch.rand(batch, beams, generator=g) * 5
        log_probs = torch.randn(batch, beams, vocab, generator=g).log_softmax(-1)
        _, parent, token = beam_step(scores, log_probs, n)
        expected = torch.cat([sequences.gather(1, parent[..., None].expand(-1, -1, length)),
                              token[..., None]], dim=-1)  # (B, n, length + 1)
        describe = f"{batch} item(s), K={beams} beams of length {length}, V={vocab}, n={n}"
        cases.append(Case((sequences, scores, log_probs, n), expected, describe, hint=hint))
    return cases


register("40.2.beam_step", _beam_step_cases)
