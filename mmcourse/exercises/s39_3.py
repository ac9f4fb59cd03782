"""Hidden cases for the exercises of §39.3 (the challenges of multimodal learning)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Case, register


def _unit(g: torch.Generator, n: int, d: int, shift: float = 0.0) -> torch.Tensor:
    """n random unit vectors in d dimensions, optionally pushed towards a common direction."""
    x = torch.randn(n, d, generator=g)
    x[:, 0] += shift
    return F.normalize(x, dim=1)


# ---------------------------------------------------------------- 39.3 symmetric InfoNCE
def _info_nce_cases() -> list[Case]:
    from mmcourse.losses import contrastive_loss

    g = torch.Generator().manual_seed(393)
    cases = []
    for n, d, scale in ((4, 8, 1.0), (16, 32, 14.285714), (9, 5, 100.0), (1, 3, 10.0)):
        img, txt = _unit(g, n, d), _unit(g, n, d)
        cases.append(Case((img, txt, scale), contrastive_loss(img, txt, scale).item(),
                          f"{n} pairs of unit vectors in {d} dimensions, logit_scale={scale}",
                          hint="logits = logit_scale * image_emb @ text_emb.T; average the "
                               "cross-entropy of the rows and of the columns, with the targets "
                               "on the diagonal."))
    img = _unit(g, 6, 4)
    cases.append(Case((img, img.clone(), 50.0), contrastive_loss(img, img, 50.0).item(),
                      "6 pairs whose image and text embeddings coincide, logit_scale=50",
                      hint="the loss is symmetric: (CE(logits) + CE(logits.T)) / 2."))
    return cases


register("39.3.info_nce", _info_nce_cases)


# ---------------------------------------------------------------- 39.3 recall@k
def _recall_cases() -> list[Case]:
    from mmcourse.metrics import recall_at_k

    g = torch.Generator().manual_seed(3931)
    cases = []
    for q, gal, k in ((5, 5, 1), (20, 20, 5), (8, 30, 3), (50, 50, 10)):
        sim = torch.randn(q, gal, generator=g)
        sim[: q // 2, : q // 2] += 2 * torch.eye(q // 2)  # half the queries are easy
        cases.append(Case((sim, k), recall_at_k(sim, k)[0],
                          f"a ({q}, {gal}) similarity matrix, k={k}",
                          hint="query i's match is column i; it is found when fewer than k "
                               "columns score strictly higher than column i."))
    sim = torch.zeros(6, 6)  # all scores equal: ties count in the query's favour
    cases.append(Case((sim, 1), 1.0, "a (6, 6) matrix of equal scores (ties), k=1",
                      hint="count only the items scored strictly higher than the match."))
    return cases


register("39.3.recall_at_k", _recall_cases)


# ---------------------------------------------------------------- 39.3 the modality gap
def _gap_cases() -> list[Case]:
    from mmcourse.metrics import modality_gap

    g = torch.Generator().manual_seed(3932)
    cases = []
    for n, m, d, s in ((10, 10, 4, 0.0), (30, 20, 16, 3.0), (5, 40, 8, 1.0)):
        a = torch.randn(n, d, generator=g) * 3 + s  # not normalised: the function must normalise
        b = torch.randn(m, d, generator=g) - s
        cases.append(Case((a, b), modality_gap(a, b),
                          f"a: {n} vectors, b: {m} vectors, {d} dimensions",
                          hint="normalise every row to unit length first, then take the distance "
                               "between the two means."))
    return cases


register("39.3.modality_gap", _gap_cases)
