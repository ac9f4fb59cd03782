"""Curating image-text data with embeddings: CLIP-score filtering, near-duplicate removal, and
MMC4's assignment of a document's images to its sentences.

- :func:`clip_score`: the cosine similarity of each image with its own text, the score LAION
  thresholds (Schuhmann et al. 2022) and DataComp's baselines rank by (Gadre et al. 2023).
- :func:`filter_sweep`: for each threshold, the fraction of pairs kept, the precision of what is
  kept and the recall of the good pairs, given the truth.
- :func:`near_duplicates` / :func:`deduplicate`: pairs of images whose embeddings are closer than
  a threshold, and which images to keep, as SemDeDup does (Abbas et al. 2023).
- :func:`assign_images`: images to sentences by bipartite matching on similarities (MMC4, Zhu et
  al. 2023) or by each image's best sentence (greedy).

Built in §40.7.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def _check_pair(image_emb: torch.Tensor, text_emb: torch.Tensor) -> None:
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape:
        raise ValueError(f"expected image and text embeddings of one shape (N, D), got "
                         f"{tuple(image_emb.shape)} and {tuple(text_emb.shape)}")


def clip_score(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """The cosine similarity of image ``i`` with text ``i``: (N, D) x (N, D) -> (N,). The
    embeddings are normalised here, so raw projections may be passed."""
    _check_pair(image_emb, text_emb)
    u = torch.nn.functional.normalize(image_emb, dim=-1)
    v = torch.nn.functional.normalize(text_emb, dim=-1)
    return (u * v).sum(-1)  # (N, D) -> (N,)


def filter_sweep(scores: torch.Tensor, good: torch.Tensor, thresholds) -> list[dict[str, float]]:
    """Keep the pairs whose score is at least each threshold; with ``good`` (N,) bool saying
    which pairs are truly good, return per threshold ``{"threshold", "kept", "precision",
    "recall"}``: the fraction of pairs kept, the fraction of kept pairs that are good (nan if none
    is kept) and the fraction of good pairs that are kept."""
    if scores.shape != good.shape or scores.dim() != 1:
        raise ValueError(f"expected scores and good of one shape (N,), got {tuple(scores.shape)} "
                         f"and {tuple(good.shape)}")
    good = good.bool()
    rows = []
    for t in thresholds:
        kept = scores >= t
        n_kept = int(kept.sum())
        rows.append({"threshold": float(t), "kept": n_kept / len(scores),
                     "precision": float((kept & good).sum()) / n_kept if n_kept else float("nan"),
                     "recall": float((kept & good).sum()) / max(1, int(good.sum()))})
    return rows


def near_duplicates(emb: torch.Tensor, threshold: float) -> torch.Tensor:
    """All pairs ``(i, j)``, ``i < j``, whose cosine similarity is above ``threshold``:
    (N, D) -> (P, 2) long, sorted by ``i`` then ``j``."""
    if emb.dim() != 2:
        raise ValueError(f"expected embeddings of shape (N, D), got {tuple(emb.shape)}")
    unit = torch.nn.functional.normalize(emb, dim=-1)
    similarity = unit @ unit.T  # (N, N)
    upper = torch.ones_like(similarity, dtype=torch.bool).triu(diagonal=1)
    return ((similarity > threshold) & upper).nonzero()  # (P, 2)


def deduplicate(emb: torch.Tensor, threshold: float) -> torch.Tensor:
    """Which items to keep, (N, D) -> (N,) bool: going through the items in order, an item is
    dropped if it is a near-duplicate (cosine above ``threshold``) of an earlier item that is
    kept, so one member of each group of duplicates survives."""
    pairs = near_duplicates(emb, threshold)
    keep = torch.ones(len(emb), dtype=torch.bool)
    for i, j in pairs.tolist():  # sorted by i: every earlier item is decided before j
        if keep[i]:
            keep[j] = False
    return keep


def assign_images(similarity: torch.Tensor | np.ndarray, method: str = "bipartite") -> np.ndarray:
    """Assign each image of a document to a sentence, from a similarity matrix (images x
    sentences, M <= S): ``"bipartite"`` maximises the total similarity with each sentence taking
    at most one image (MMC4's linear assignment, ``scipy.optimize.linear_sum_assignment``);
    ``"greedy"`` gives each image its most similar sentence, so two images may share one.
    Returns (M,) sentence indices."""
    sim = similarity.detach().cpu().numpy() if isinstance(similarity, torch.Tensor) else similarity
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] > sim.shape[1]:
        raise ValueError(f"expected a similarity matrix (images M, sentences S) with M <= S, got "
                         f"shape {sim.shape}")
    if method == "greedy":
        return sim.argmax(axis=1)
    if method == "bipartite":
        rows, cols = linear_sum_assignment(sim, maximize=True)
        out = np.empty(sim.shape[0], dtype=np.int64)
        out[rows] = cols
        return out
    raise ValueError(f"unknown method {method!r}; expected 'bipartite' or 'greedy'")
