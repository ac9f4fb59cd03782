"""Cross-modal retrieval metrics: recall@k with the ground-truth pairs on the diagonal.

Built in §39.3; §40.1 scores CLIP with them.
"""
from __future__ import annotations

import torch


def recall_at_k(similarity: torch.Tensor, k: int) -> tuple[float, torch.Tensor]:
    """Recall@k of the queries in the rows of ``similarity`` (Q, G): query ``i``'s match is item
    ``i`` of the gallery (so Q <= G), and it counts as retrieved when fewer than ``k`` gallery items
    score strictly higher than it (ties count in the query's favour).

    For image -> text retrieval pass ``image_emb @ text_emb.T``; for text -> image its transpose.
    Returns ``(score, per_item)``: the fraction of queries retrieved, and a bool tensor (Q,) of
    hits. Built in §39.3.
    """
    if similarity.dim() != 2 or not 0 < similarity.shape[0] <= similarity.shape[1]:
        raise ValueError(
            f"expected a similarity matrix (Q, G) with 0 < Q <= G (query i matches item i), "
            f"got {tuple(similarity.shape)}"
        )
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"expected k to be a positive int, got {k!r}")
    queries = similarity.shape[0]
    diagonal = torch.arange(queries, device=similarity.device)
    true_scores = similarity[diagonal, diagonal]  # (Q,)
    rank = (similarity > true_scores[:, None]).sum(dim=1)  # (Q, G) -> (Q,): items above the match
    per_item = rank < k
    return per_item.float().mean().item(), per_item


def retrieval_scores(
    similarity: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """Recall@k in both directions from a square image x text ``similarity`` (N, N) matrix whose
    diagonal holds the pairs: ``{"image->text R@1": ..., "text->image R@1": ..., ...}``.
    Built in §39.3."""
    if similarity.dim() != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(
            "expected a square (N, N) image x text similarity matrix, got "
            f"{tuple(similarity.shape)}"
        )
    scores = {}
    for name, sim in (("image->text", similarity), ("text->image", similarity.T)):
        for k in ks:
            scores[f"{name} R@{k}"] = recall_at_k(sim, k)[0]
    return scores
