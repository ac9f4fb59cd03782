"""Metrics for generated images computed from features: FID, KID, Inception Score, CLIPScore.

Each function takes the features (or class probabilities, or embeddings) as NumPy arrays or torch
tensors, so the same code scores Inception-v3 features, CLIP embeddings, or the small feature
extractor the book trains on ShapesWorld. How each one matches its reference:

- ``fid``: pytorch-fid's ``calculate_frechet_distance`` on float64 statistics (means, unbiased
  covariances, ``scipy.linalg.sqrtm`` of the product, the ``eps`` retry when it is singular, the
  check on the imaginary part).
- ``kid``: torchmetrics' ``KernelInceptionDistance`` (cubic polynomial kernel, unbiased MMD over
  random subsets, population standard deviation). The subsets come from ``torch.randperm`` on a
  generator seeded with ``seed``: the same subsets torchmetrics draws after ``torch.manual_seed``.
- ``inception_score``: torchmetrics' ``InceptionScore`` split rule (``torch.chunk``, sample
  standard deviation); with ``seed`` it shuffles first, as torchmetrics does.
- ``clip_score``: Hessel et al. (2021): ``w * max(cos(image, text), 0)``.

Built in §42.3, which scores a small text-to-image generator trained on ShapesWorld.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def _as_matrix(x, name: str) -> np.ndarray:
    """A finite float64 (N, D) array from a NumPy array or torch tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"expected {name} of shape (N, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"expected finite values in {name}, found NaN or inf")
    return x


def _same_width(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"expected {names} of the same width, got {a.shape[1]} and {b.shape[1]}")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))``, step for step as pytorch-fid.
    """
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"fid calculation produces singular product; adding {eps} to diagonal of "
                      "cov estimates", RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):  # numerical error can leave a small imaginary part
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features_a, features_b, eps: float = 1e-6) -> float:
    """FID between two sets of features (N, D) and (M, D): Gaussians fitted by the mean and the
    unbiased covariance, compared with :func:`frechet_distance`. Built in §42.3."""
    a, b = _as_matrix(features_a, "features_a"), _as_matrix(features_b, "features_b")
    _same_width(a, b, "feature matrices")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"expected at least 2 samples per set for a covariance, got {len(a)} "
                         f"and {len(b)}")
    stats = [(x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))) for x in (a, b)]
    return frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1], eps)


def _poly_kernel(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float):
    return (x @ y.T * gamma + coef) ** degree  # (m, D) x (m, D) -> (m, m)


def _mmd2_unbiased(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2: off-diagonal means of k_xx and k_yy, minus twice the mean of k_xy."""
    m = k_xx.shape[0]
    kt_xx = k_xx.sum() - torch.diagonal(k_xx).sum()
    kt_yy = k_yy.sum() - torch.diagonal(k_yy).sum()
    return (kt_xx + kt_yy) / (m * (m - 1)) - 2 * k_xy.sum() / m**2


def kid(features_a, features_b, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance between real ``features_a`` (N, D) and generated ``features_b``
    (M, D): the unbiased MMD^2 with kernel ``(gamma x.y + coef)^degree`` (gamma = 1/D by
    default) on ``subsets`` random subsets of ``subset_size`` rows of each set.

    Returns ``(mean, std)`` over subsets (population std, as torchmetrics). Subset ``s`` takes
    ``randperm(N)[:subset_size]`` then ``randperm(M)[:subset_size]`` from one generator seeded
    with ``seed``, so torchmetrics after ``torch.manual_seed(seed)`` draws the same subsets.
    Built in §42.3.
    """
    a, b = _as_matrix(features_a, "features_a"), _as_matrix(features_b, "features_b")
    _same_width(a, b, "feature matrices")
    if subset_size < 2 or subset_size > min(len(a), len(b)):
        raise ValueError(f"expected 2 <= subset_size <= number of samples ({len(a)} and "
                         f"{len(b)}), got {subset_size}")
    if subsets < 1:
        raise ValueError(f"expected subsets >= 1, got {subsets}")
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    fa, fb = torch.from_numpy(a), torch.from_numpy(b)
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        x = fa[torch.randperm(len(fa), generator=generator)[:subset_size]]
        y = fb[torch.randperm(len(fb), generator=generator)[:subset_size]]
        scores.append(_mmd2_unbiased(_poly_kernel(x, x, degree, gamma, coef),
                                     _poly_kernel(x, y, degree, gamma, coef),
                                     _poly_kernel(y, y, degree, gamma, coef)))
    values = torch.stack(scores)
    return values.mean().item(), values.std(unbiased=False).item()


def inception_score(probs, splits: int = 10, seed: int | None = None) -> tuple[float, float]:
    """Inception Score of class probabilities ``probs`` (N, C) (rows sum to 1):
    ``exp(E_x KL(p(y|x) || p(y)))`` on each of ``splits`` consecutive chunks (``torch.chunk``:
    chunks of ``ceil(N / splits)`` rows, possibly fewer chunks), then mean and sample std.

    With ``seed`` the rows are first shuffled by ``randperm(N)`` from a generator seeded with it
    (what torchmetrics does after ``torch.manual_seed(seed)``); ``None`` keeps the given order.
    Built in §42.3.
    """
    p = _as_matrix(probs, "probs")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("expected probs to be probabilities: non-negative rows summing to 1")
    if not isinstance(splits, int) or splits < 1 or splits > len(p):
        raise ValueError(f"expected 1 <= splits <= N = {len(p)}, got {splits!r}")
    if seed is not None:
        p = p[torch.randperm(len(p), generator=torch.Generator().manual_seed(seed)).numpy()]
    size = -(-len(p) // splits)  # torch.chunk's chunk size
    scores = []
    for start in range(0, len(p), size):
        chunk = p[start:start + size]  # (n, C)
        marginal = chunk.mean(axis=0, keepdims=True)  # (1, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(chunk > 0, chunk * (np.log(chunk) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    scores = np.array(scores)
    std = scores.std(ddof=1) if len(scores) > 1 else float("nan")
    return float(scores.mean()), float(std)


def clip_score(image_embeddings, text_embeddings, w: float = 2.5) -> tuple[float, list[float]]:
    """CLIPScore (Hessel et al. 2021) of aligned image (N, D) and caption (N, D) embeddings:
    ``w * max(cos(image_i, text_i), 0)`` per pair, and the mean. (torchmetrics' ``CLIPScore`` is
    the same with ``w = 100``.) Built in §42.3."""
    a, b = _as_matrix(image_embeddings, "image_embeddings"), _as_matrix(text_embeddings,
                                                                       "text_embeddings")
    _same_width(a, b, "image and text embeddings")
    if len(a) != len(b):
        raise ValueError(f"expected as many captions as images, got {len(b)} and {len(a)}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    if (norms == 0).any():
        raise ValueError("expected non-zero embeddings (a zero vector has no direction)")
    cos = (a * b).sum(axis=1) / norms  # (N, D) x (N, D) -> (N,)
    per_item = (w * np.maximum(cos, 0.0)).tolist()
    return float(np.mean(per_item)), per_item
