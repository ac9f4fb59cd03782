"""Hidden cases for the exercises of §40.7 (training data and objectives)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .core import Case, register


# ---------------------------------------------------------------- 40.7 hardest negatives
def _hardest_cases() -> list[Case]:
    g = torch.Generator().manual_seed(407)
    cases = []
    for batch, with_exclude in ((3, False), (6, False), (8, True), (16, True)):
        sim = torch.randn(batch, batch, generator=g)
        sim.diagonal().add_(3.0)  # the positives score highest, as after some training
        exclude = torch.rand(batch, batch, generator=g) < 0.3 if with_exclude else None
        banned = torch.eye(batch, dtype=torch.bool) | (exclude if with_exclude else False)
        if with_exclude:
            exclude[:, -1] = False  # every row keeps a candidate
            exclude[-1, 0] = False
            banned = torch.eye(batch, dtype=torch.bool) | exclude
        expected = sim.masked_fill(banned, float("-inf")).argmax(1)
        what = f"{batch} x {batch} similarities" + (", some candidates excluded" if with_exclude
                                                   else "")
        cases.append(Case((sim, exclude), expected, what,
                          hint="mask the diagonal (the positive) and the excluded entries with "
                               "-inf, then take the argmax of each row."))
    return cases


register("40.7.hardest_negatives", _hardest_cases)


# ---------------------------------------------------------------- 40.7 bipartite assignment
def _assignment_cases() -> list[Case]:
    rng = np.random.default_rng(4071)
    cases = []
    for images, sentences in ((1, 3), (2, 2), (3, 5), (4, 7), (6, 6)):
        sim = rng.normal(size=(images, sentences))
        rows, cols = linear_sum_assignment(sim, maximize=True)
        expected = np.empty(images, dtype=np.int64)
        expected[rows] = cols
        cases.append(Case((sim,), expected, f"{images} images, {sentences} sentences",
                          hint="every image gets a different sentence, and the sum of the chosen "
                               "similarities is as large as possible (scipy's "
                               "linear_sum_assignment with maximize=True)."))
    return cases


register("40.7.assign_bipartite", _assignment_cases)
