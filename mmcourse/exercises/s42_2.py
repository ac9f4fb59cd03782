"""Hidden cases of the exercises of §42.2 (captioning metrics): METEOR's chunks and Kendall's
tau-b."""
from __future__ import annotations

import numpy as np

from .core import Case, register


def _chunks(pairs: list[tuple[int, int]]) -> int:
    pairs = sorted(pairs)
    return sum(1 for k, (i, j) in enumerate(pairs)
               if k == 0 or (i, j) != (pairs[k - 1][0] + 1, pairs[k - 1][1] + 1))


def _count_chunks_cases() -> list[Case]:
    alignments = [
        [(0, 0), (1, 1), (2, 2)],  # one chunk
        [(0, 1), (1, 2), (2, 0)],  # "red circle a" against "a red circle": two chunks
        [(2, 2), (0, 0), (1, 1)],  # the same chunk, given out of order
        [(0, 2), (1, 1), (2, 0)],  # reversed: every word its own chunk
        [],  # no match
        [(0, 0), (1, 1), (3, 2), (4, 3)],  # a gap in the candidate breaks the chunk
        [(0, 0), (1, 2), (2, 3)],  # a gap in the reference too
        [(5, 7)],
    ]
    rng = np.random.default_rng(0)
    for _ in range(4):  # random one-to-one alignments
        n = int(rng.integers(3, 12))
        test = rng.permutation(n)[: int(rng.integers(1, n + 1))]
        ref = rng.permutation(n + 3)[: len(test)]
        alignments.append([(int(i), int(j)) for i, j in zip(test, ref)])
    return [Case((list(a),), _chunks(a), f"alignment {a}",
                 hint="sort the pairs by candidate position; a pair continues the previous "
                      "chunk only when both of its positions are one more than the previous "
                      "pair's.") for a in alignments]


def _kendall_cases() -> list[Case]:
    from scipy.stats import kendalltau

    rng = np.random.default_rng(1)
    data = [([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]), ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),
            ([1, 2, 3, 4], [2, 1, 4, 3]), ([1, 1, 2, 3], [1, 2, 2, 3]),  # ties on both sides
            ([0.2, 0.4, 0.4, 0.9, 0.1], [3, 3, 5, 4, 1])]
    x = rng.random(30)
    data.append((x.tolist(), (x + rng.normal(0, 0.3, 30)).tolist()))
    data.append((rng.integers(1, 6, 40).tolist(), rng.integers(1, 4, 40).tolist()))
    data.append((rng.random(25).round(1).tolist(), rng.random(25).round(1).tolist()))
    return [Case((list(a), list(b)), float(kendalltau(a, b).statistic), f"{len(a)} pairs",
                 hint="over all n0 = n(n-1)/2 pairs i < j, count concordant (C) and discordant "
                      "(D) ones; tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) where n1 and n2 "
                      "count the pairs tied in x and the pairs tied in y.") for a, b in data]


register("42.2.count_chunks", _count_chunks_cases, atol=0.0)
register("42.2.kendall_tau_b", _kendall_cases, atol=1e-9)
