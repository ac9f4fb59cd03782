"""mmcourse.metrics: modality gap, cone statistics and recall@k against hand-made cases."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmcourse.metrics import (cone_statistics, gap_vector, modality_gap, recall_at_k,
                              retrieval_scores)


def test_gap_of_two_opposite_points_is_two_and_of_a_cloud_with_itself_zero():
    a = torch.tensor([[3.0, 0.0]] * 4)
    assert modality_gap(a, -a) == pytest.approx(2.0)
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert modality_gap(x, x) == 0.0
    assert modality_gap(x, 5 * x) == pytest.approx(0.0, abs=1e-6)  # rows are normalised first


def test_gap_vector_is_the_difference_of_the_centroids_of_unit_vectors():
    a, b = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, -4.0]])
    assert torch.allclose(gap_vector(a, b), torch.tensor([0.5, 1.5]))
    assert modality_gap(a, b) == pytest.approx(math.sqrt(0.25 + 2.25))


def test_cone_statistics_of_one_direction_and_of_an_orthonormal_basis():
    same = torch.ones(10, 4)
    stats = cone_statistics(same)
    assert stats["mean_cosine"] == pytest.approx(1.0)
    assert stats["centroid_norm"] == pytest.approx(1.0)
    basis = torch.eye(6)
    stats = cone_statistics(basis)
    assert stats["mean_cosine"] == pytest.approx(0.0) and stats["std_cosine"] == pytest.approx(0.0)
    assert stats["centroid_norm"] == pytest.approx(1 / math.sqrt(6))
    assert stats["top_pc_share"] == pytest.approx(1 / 5, abs=1e-5)  # centred: 5 equal directions


def test_mean_cosine_follows_from_the_centroid_norm():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(1)) + 1.5
    stats, n = cone_statistics(x), len(x)
    expected = (n * stats["centroid_norm"] ** 2 - 1) / (n - 1)
    assert stats["mean_cosine"] == pytest.approx(expected, abs=1e-5)


def test_recall_at_k_counts_items_scored_strictly_higher():
    sim = torch.tensor([[0.9, 0.1, 0.0],
                        [0.5, 0.2, 0.8],   # the match is third
                        [0.3, 0.3, 0.3]])  # ties: counted as found
    score, hits = recall_at_k(sim, 1)
    assert hits.tolist() == [True, False, True] and score == pytest.approx(2 / 3)
    assert recall_at_k(sim, 3)[0] == 1.0
    wide = torch.cat([sim, torch.full((3, 2), 0.95)], dim=1)  # a larger gallery of distractors
    assert recall_at_k(wide, 1)[0] == 0.0
    assert recall_at_k(wide, 3)[1].tolist() == [True, False, True]


def test_retrieval_scores_go_both_ways():
    sim = torch.tensor([[1.0, 0.0], [2.0, 0.5]])
    scores = retrieval_scores(sim, ks=(1,))
    assert scores == {"image->text R@1": 0.5, "text->image R@1": 0.5}
    emb = F.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(2)), dim=1)
    assert all(v == 1.0 for v in retrieval_scores(emb @ emb.T).values())


@pytest.mark.parametrize("call, message", [
    (lambda: modality_gap(torch.randn(5, 3), torch.randn(5, 4)), "same width"),
    (lambda: cone_statistics(torch.randn(1, 3)), r"expected x of shape \(N, D\) with N >= 2"),
    (lambda: recall_at_k(torch.randn(5, 3), 1), r"0 < Q <= G"),
    (lambda: recall_at_k(torch.randn(3, 3), 0), "positive int"),
    (lambda: retrieval_scores(torch.randn(3, 4)), "square"),
])
def test_errors_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
