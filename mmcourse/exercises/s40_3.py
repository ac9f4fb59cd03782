"""Hidden cases for the exercises of §40.3 (visual dialogue)."""
from __future__ import annotations

import torch

from .core import Case, register


# ---------------------------------------------------------------- 40.3 NDCG
def _ndcg_cases() -> list[Case]:
    from mmcourse.metrics import ndcg

    g = torch.Generator().manual_seed(403)
    hint = ("K = number of candidates with relevance > 0; sort the candidates by score "
            "(best first), "
            "sum relevance / log2(position + 2) over the first K positions, and divide by the same "
            "sum with the relevance sorted from high to low.")
    cases = []
    for rounds, num in ((1, 4), (3, 10), (5, 100)):
        scores = torch.randn(rounds, num, generator=g)
        keep = torch.rand(rounds, num, generator=g) < 0.3
        relevance = keep * torch.rand(rounds, num, generator=g)
        relevance[:, 0] = 1.0  # at least one relevant candidate per round
        cases.append(Case((scores, relevance), ndcg(scores, relevance),
                          f"{rounds} rounds x {num} candidates", hint=hint))
    return cases


register("40.3.ndcg", _ndcg_cases)


# ---------------------------------------------------------------- 40.3 memory read
def _memory_cases() -> list[Case]:
    from mmcourse.models import memory_read

    g = torch.Generator().manual_seed(4031)
    hint = ("scores = (facts @ question[:, :, None]).squeeze(2); set the masked scores to -inf "
            "before the softmax over the facts; memory = sum_t weights[:, t] * facts[:, t].")
    cases = []
    for batch, facts, dim in ((1, 1, 3), (2, 5, 4), (4, 9, 8)):
        q = torch.randn(batch, dim, generator=g)
        f = torch.randn(batch, facts, dim, generator=g)
        mask = torch.arange(facts)[None, :] <= torch.randint(0, facts, (batch, 1), generator=g)
        cases.append(Case((q, f, mask), memory_read(q, f, mask)[0],
                          f"question ({batch}, {dim}), facts ({batch}, {facts}, {dim})", hint=hint))
    return cases


register("40.3.memory_read", _memory_cases)
