"""Statistics of embedding clouds: the modality gap and the cone effect (Liang et al. 2022).

Built in §39.3, which measures both on a dual encoder before and after contrastive training.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_matrix(x: torch.Tensor, name: str, min_rows: int = 1) -> None:
    if x.dim() != 2 or len(x) < min_rows:
        raise ValueError(
            f"expected {name} of shape (N, D) with N >= {min_rows}, got {tuple(x.shape)}"
        )


def gap_vector(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The difference of the centroids of two clouds of L2-normalised embeddings.

    ``a`` (N, D) and ``b`` (M, D), e.g. image and text embeddings, are normalised row by row
    first; returns ``mean(a) - mean(b)``, shape (D,). Built in §39.3.
    """
    _check_matrix(a, "a")
    _check_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"expected embeddings of the same width, got {a.shape[1]} and {b.shape[1]}"
        )
    # (N, D) -> (D,) and (M, D) -> (D,)
    return F.normalize(a.float(), dim=1).mean(0) - F.normalize(b.float(), dim=1).mean(0)


def modality_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """The modality gap: the Euclidean distance between the centroids of the L2-normalised
    embeddings ``a`` (N, D) and ``b`` (M, D) — the norm of :func:`gap_vector`. It lies in [0, 2]:
    0 when the centroids coincide, 2 when each cloud is a single point and the two points are
    opposite. Built in §39.3."""
    return gap_vector(a, b).norm().item()


def cone_statistics(x: torch.Tensor) -> dict[str, float]:
    """How narrow a cone the embeddings ``x`` (N, D) occupy, after L2 normalisation.

    Returns a dict with
    - ``mean_cosine``: the mean cosine similarity over the N (N - 1) pairs of distinct rows (0 for
      directions spread evenly, 1 when they all coincide);
    - ``std_cosine``: the standard deviation of those cosines;
    - ``centroid_norm``: the norm of the mean unit vector (0 for evenly spread directions, 1 for one
      direction);
    - ``top_pc_share``: the fraction of the variance of the unit vectors along their first principal
      direction (1 / D for an isotropic cloud).
    Built in §39.3.
    """
    _check_matrix(x, "x", min_rows=2)
    unit = F.normalize(x.float(), dim=1)
    n = len(unit)
    cos = unit @ unit.T  # (N, N)
    off_diagonal = cos[~torch.eye(n, dtype=torch.bool, device=cos.device)]  # (N (N - 1),)
    variances = torch.linalg.svdvals(unit - unit.mean(0)) ** 2  # (min(N, D),)
    return {
        "mean_cosine": off_diagonal.mean().item(),
        "std_cosine": off_diagonal.std().item(),
        "centroid_norm": unit.mean(0).norm().item(),
        "top_pc_share": (variances[0] / variances.sum().clamp_min(1e-12)).item(),
    }
