"""Hidden cases of the exercises of §41.2 (speech generation: the codec, VALL-E)."""
from __future__ import annotations

from .core import Case, register


def _rvq_cases() -> list[Case]:
    import torch

    from ..models.rvq import ResidualVectorQuantizer

    cases = []
    for seed, (n, k, dim, rows) in enumerate([(1, 4, 2, 5), (2, 8, 3, 10), (4, 16, 8, 33),
                                              (3, 2, 1, 7)]):
        g = torch.Generator().manual_seed(seed)
        rvq = ResidualVectorQuantizer(n, k, dim)
        codebooks = [torch.randn(k, dim, generator=g) / (j + 1) for j in range(n)]
        for layer, book in zip(rvq.layers, codebooks):
            layer.embed.copy_(book)
        vectors = torch.randn(rows, dim, generator=g)
        expected = rvq.encode(vectors.T[None])[0].T  # (B=1, D, T) -> (rows, n)
        cases.append(Case((vectors, [b.clone() for b in codebooks]), expected,
                          f"{rows} vectors of {dim} dimensions, {n} codebooks of {k}",
                          hint="for each codebook in turn: the nearest vector (Euclidean) to "
                               "what is left, its index the code, then subtract that vector "
                               "from what is left."))
    return cases


register("41.2.rvq_encode", _rvq_cases, atol=0.0)
