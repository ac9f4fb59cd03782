"""Ranking metrics of visual dialogue, as the VisDial 1.0 evaluation defines them.

A model scores C candidate answers per round; the true answer's rank gives MRR, recall@k and the
mean rank, and dense relevance scores of the candidates give NDCG. Built in §40.3.
"""
from __future__ import annotations

import torch


def _check_scores(scores: torch.Tensor) -> None:
    if scores.dim() != 2:
        raise ValueError(f"expected scores of shape (N, C) (rounds x candidates), "
                         f"got {tuple(scores.shape)}")


def scores_to_ranks(scores: torch.Tensor) -> torch.Tensor:
    """The rank of every candidate, 1 = best: (N, C) scores -> (N, C) ranks. Ties are broken by
    candidate order (a stable sort), so that ranks are reproducible; VisDial's scorer calls
    PyTorch's default ``sort``, which promises no order among ties. Built in §40.3."""
    _check_scores(scores)
    order = scores.argsort(dim=1, descending=True, stable=True)  # (N, C): candidates, best first
    positions = torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)  # (N, C): rank of each candidate


def ndcg(scores: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """VisDial 1.0's NDCG of each round, (N, C) scores and relevance -> (N,).

    With K the number of candidates of non-zero relevance, DCG@K = sum over the top K candidates
    of relevance / log2(rank + 1), divided by the DCG@K of the best possible order. Built in §40.3.
    """
    _check_scores(scores)
    if relevance.shape != scores.shape:
        raise ValueError(f"expected relevance of shape {tuple(scores.shape)}, "
                         f"got {tuple(relevance.shape)}")
    k = (relevance > 0).sum(dim=1)  # (N,)
    if (k == 0).any():
        raise ValueError("every round needs at least one candidate of non-zero relevance")
    order = scores.argsort(dim=1, descending=True, stable=True)
    gains = relevance.float().gather(1, order)  # (N, C): relevance in the model's order
    ideal = relevance.float().sort(dim=1, descending=True).values  # (N, C): the best order
    positions = torch.arange(scores.shape[1], device=scores.device)
    # (N, C): the discounts of the top K positions, 0 below
    weights = (positions[None, :] < k[:, None]) / torch.log2(positions + 2.0)
    return (gains * weights).sum(1) / (ideal * weights).sum(1)


def ranking_metrics(scores: torch.Tensor, truth: torch.Tensor,
                    relevance: torch.Tensor | None = None,
                    ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """VisDial's metrics from (N, C) candidate ``scores`` and the true answers' positions ``truth``
    (N,): MRR, R@k (the true answer among the top k), mean rank, and NDCG if ``relevance`` (N, C)
    is given. Built in §40.3."""
    _check_scores(scores)
    if truth.shape != scores.shape[:1]:
        raise ValueError(f"expected truth of shape ({scores.shape[0]},), got {tuple(truth.shape)}")
    rank = scores_to_ranks(scores).gather(1, truth[:, None]).squeeze(1).float()  # (N,)
    out = {"MRR": (1.0 / rank).mean().item()}
    out.update({f"R@{k}": (rank <= k).float().mean().item() for k in ks})
    out["mean rank"] = rank.mean().item()
    if relevance is not None:
        out["NDCG"] = ndcg(scores, relevance).mean().item()
    return out
