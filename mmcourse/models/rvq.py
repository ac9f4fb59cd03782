"""Residual vector quantisation, the bottleneck of neural audio codecs (SoundStream, EnCodec):
codebooks learnt by k-means and exponential moving averages rather than by gradients, dead codes
restarted, a commitment loss for the encoder, and quantiser dropout for variable bitrates.
Used by :class:`mmcourse.models.Codec`. Built in §41.2.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _sample_rows(vectors: torch.Tensor, num: int) -> torch.Tensor:
    """``num`` rows of ``vectors`` (N, D) drawn at random, without replacement when N >= num."""
    n = vectors.shape[0]
    if n >= num:
        rows = torch.randperm(n, device=vectors.device)[:num]
    else:
        rows = torch.randint(0, n, (num,), device=vectors.device)
    return vectors[rows]


def _nearest(vectors: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The index of the nearest centroid (K, D) to each vector (N, D), from
    ``||x||^2 - 2 x.e + ||e||^2`` (written as EncodecModel does, so ties break alike)."""
    embed = centroids.t()  # (D, K)
    distances = (vectors.pow(2).sum(1, keepdim=True) - 2 * vectors @ embed
                 + embed.pow(2).sum(0, keepdim=True))  # (N, K)
    return (-distances).max(dim=-1).indices


def kmeans(vectors: torch.Tensor, num_clusters: int, iters: int = 10
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means: start from ``num_clusters`` random rows of ``vectors`` (N, D), then
    ``iters`` times assign every vector to its nearest centroid and move each centroid to the
    mean of its vectors (an empty cluster keeps its centroid). Deterministic given torch's seed.
    Returns the centroids (K, D) and the sizes of the last assignment's clusters (K,).
    Built in §41.2."""
    if vectors.dim() != 2 or vectors.shape[0] == 0:
        raise ValueError(f"expected vectors of shape (N, D) with N >= 1, got "
                         f"{tuple(vectors.shape)}")
    centroids = _sample_rows(vectors, num_clusters)
    counts = torch.zeros(num_clusters, device=vectors.device, dtype=vectors.dtype)
    for _ in range(iters):
        onehot = F.one_hot(_nearest(vectors, centroids), num_clusters).to(vectors.dtype)
        counts = onehot.sum(0)  # (K,)
        means = (onehot.t() @ vectors) / counts.clamp_min(1)[:, None]  # (K, D)
        centroids = torch.where(counts[:, None] > 0, means, centroids)
    return centroids, counts


class Codebook(nn.Module):
    """One vector quantiser: ``codebook_size`` vectors ``embed`` (K, D); a vector's code is the
    index of the nearest one. The codebook is not learnt by gradient descent but, in ``train()``
    mode, by k-means on the first batch and then by exponential moving averages:
    ``cluster_size`` and ``embed_avg`` track how many vectors each code gets and their sum,
    and each code is their ratio (with Laplace-smoothed sizes). A code whose average size falls
    below ``dead_code_threshold`` is restarted at a random vector of the batch. Built in §41.2."""

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, epsilon: float = 1e-5,
                 kmeans_iters: int = 10, dead_code_threshold: float = 2.0) -> None:
        super().__init__()
        self.decay, self.epsilon, self.kmeans_iters = decay, epsilon, kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.register_buffer("inited", torch.zeros(1))  # 1 once k-means has run
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", torch.zeros(codebook_size, dim))
        self.register_buffer("embed_avg", torch.zeros(codebook_size, dim))

    def assign(self, vectors: torch.Tensor) -> torch.Tensor:
        """Codes (N,) of vectors (N, D)."""
        return _nearest(vectors, self.embed)

    @torch.no_grad()
    def initialise(self, vectors: torch.Tensor) -> None:
        """Set the codebook to the k-means centroids of ``vectors`` (N, D)."""
        centroids, counts = kmeans(vectors, self.embed.shape[0], self.kmeans_iters)
        self.embed.copy_(centroids)
        self.embed_avg.copy_(centroids * counts[:, None])  # so that embed = embed_avg / size
        self.cluster_size.copy_(counts)
        self.inited.fill_(1)

    @torch.no_grad()
    def update(self, vectors: torch.Tensor, codes: torch.Tensor) -> None:
        """One EMA step towards the vectors (N, D) assigned to each code (N,), then restart the
        dead codes."""
        onehot = F.one_hot(codes, self.embed.shape[0]).to(vectors.dtype)  # (N, K)
        self.cluster_size.lerp_(onehot.sum(0), 1 - self.decay)  # d * size + (1 - d) * count
        self.embed_avg.lerp_(onehot.t() @ vectors, 1 - self.decay)  # ... and the sum, (K, D)
        total = self.cluster_size.sum()
        k = self.embed.shape[0]
        smoothed = (self.cluster_size + self.epsilon) / (total + k * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        dead = (self.cluster_size < self.dead_code_threshold)[:, None]  # (K, 1)
        fresh = _sample_rows(vectors, k)  # no if: no reading back from the device
        self.embed.copy_(torch.where(dead, fresh, self.embed))
        # the statistics restart too, so that the next EMA step keeps the new vector
        self.embed_avg.copy_(torch.where(dead, fresh * self.dead_code_threshold,
                                         self.embed_avg))
        self.cluster_size.masked_fill_(dead[:, 0], self.dead_code_threshold)


@dataclass
class QuantizerOutput:
    """``quantized`` (B, D, T), the sum of the chosen codebook vectors (the gradient passes
    straight through to the input); ``codes`` (B, n, T); ``commitment_loss``, a scalar."""

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantisation: codebook 1 quantises each frame, codebook 2 what codebook 1
    missed, and so on; the frame becomes the sum of the n chosen vectors, and the first n rows
    of codes are a coarser code of the same audio. Built in §41.2."""

    def __init__(self, num_quantizers: int, codebook_size: int, dim: int,
                 decay: float = 0.99, epsilon: float = 1e-5, kmeans_iters: int = 10,
                 dead_code_threshold: float = 2.0, quantizer_dropout: bool = False) -> None:
        super().__init__()
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(
            Codebook(codebook_size, dim, decay, epsilon, kmeans_iters, dead_code_threshold)
            for _ in range(num_quantizers))

    def check(self, num_quantizers: int | None) -> int:
        """``num_quantizers``, or all of them for None, after checking that it is possible."""
        if num_quantizers is None:
            return len(self.layers)
        if isinstance(num_quantizers, bool) or not isinstance(num_quantizers, numbers.Integral) \
                or not 1 <= num_quantizers <= len(self.layers):
            raise ValueError(f"num_quantizers must be an integer from 1 to {len(self.layers)} "
                             f"(the codebooks of this codec), got {num_quantizers!r}")
        return int(num_quantizers)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, num_quantizers: int | None = None) -> torch.Tensor:
        """Embeddings (B, D, T) -> codes (B, n, T). Never changes the codebooks."""
        return self._quantize(x, self.check(num_quantizers), learn=False)[1]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, n, T) -> the sum of their vectors (B, D, T)."""
        if codes.dim() != 3 or codes.is_floating_point():
            raise ValueError(f"expected integer codes of shape (B, n, T), got "
                             f"{tuple(codes.shape)} {codes.dtype}")
        self.check(codes.shape[1])
        quantized = F.embedding(codes[:, 0], self.layers[0].embed)  # (B, T, D)
        for k in range(1, codes.shape[1]):
            quantized = quantized + F.embedding(codes[:, k], self.layers[k].embed)
        return quantized.permute(0, 2, 1)  # (B, D, T)

    def forward(self, x: torch.Tensor, num_quantizers: int | None = None) -> QuantizerOutput:
        """Quantise embeddings (B, D, T) with the first n codebooks; in ``train()`` mode, also
        learn the codebooks and, with ``quantizer_dropout``, draw n uniformly from 1 .. n."""
        n = self.check(num_quantizers)
        if self.training and self.quantizer_dropout:
            n = int(torch.randint(1, n + 1, ()))
        quantized, codes, loss = self._quantize(x, n, learn=self.training)
        # the value of the codes, the gradient of the identity (the straight-through estimator)
        return QuantizerOutput(quantized + (x - x.detach()), codes, loss)

    def _quantize(self, x: torch.Tensor, n: int, learn: bool
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The sum of the chosen vectors (B, D, T), the codes (B, n, T) and the commitment loss:
        the mean over codebooks of the mean squared distance between what each codebook
        quantises and its vector, whose gradient reaches only the encoder (the codebooks are
        buffers)."""
        residual, codes, losses = x, [], []
        quantized = torch.zeros_like(x)
        for codebook in self.layers[:n]:
            rows = residual.permute(0, 2, 1)  # (B, T, D)
            vectors = rows.reshape(-1, rows.shape[-1]).detach()  # (B * T, D)
            if learn and not bool(codebook.inited):
                codebook.initialise(vectors)
            index = codebook.assign(vectors)  # (B * T,)
            chosen = F.embedding(index.view(rows.shape[:2]), codebook.embed).permute(0, 2, 1)
            losses.append(F.mse_loss(residual, chosen))
            if learn:
                codebook.update(vectors, index)
            residual = residual - chosen
            quantized = quantized + chosen
            codes.append(index.view(rows.shape[:2]))
        return quantized, torch.stack(codes, dim=1), torch.stack(losses).mean()
