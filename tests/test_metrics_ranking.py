"""Tests of the VisDial ranking metrics (mmcourse.metrics.ranking, §40.3)."""
import numpy as np
import pytest
import torch
from sklearn.metrics import label_ranking_average_precision_score, ndcg_score, top_k_accuracy_score

from mmcourse.metrics import ndcg, ranking_metrics, scores_to_ranks


def test_ranks_and_ties():
    scores = torch.tensor([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0]])
    # ties: the earlier candidate first
    assert scores_to_ranks(scores).tolist() == [[3, 1, 2], [1, 2, 3]]


def test_metrics_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.0], [0.4, 0.3, 0.2, 0.1]])
    m = ranking_metrics(scores, torch.tensor([2, 3]), ks=(1, 2))
    assert m["MRR"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m["R@1"] == 0.0 and m["R@2"] == 0.5 and m["mean rank"] == 3.0


def test_ndcg_by_hand_and_perfect():
    scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    rel = torch.tensor([[0.0, 1.0, 0.5, 0.0]])  # K = 2: the top two are candidates 0 and 1
    expected = (0 + 1 / np.log2(3)) / (1 + 0.5 / np.log2(3))
    assert ndcg(scores, rel).item() == pytest.approx(expected)
    assert ndcg(rel, rel).item() == pytest.approx(1.0)


def test_matches_sklearn():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 100, generator=g)
    truth = torch.randint(0, 100, (50,), generator=g)
    rel = (torch.rand(50, 100, generator=g) < 0.05) * torch.rand(50, 100, generator=g)
    rel[torch.arange(50), truth] = 1.0
    m = ranking_metrics(scores, truth, rel)
    onehot = np.zeros((50, 100))
    onehot[np.arange(50), truth.numpy()] = 1
    assert m["MRR"] == pytest.approx(label_ranking_average_precision_score(onehot, scores.numpy()))
    for k in (1, 5, 10):
        assert m[f"R@{k}"] == pytest.approx(top_k_accuracy_score(truth.numpy(), scores.numpy(), k=k,
                                                                 labels=np.arange(100)))
    ref = [ndcg_score(rel[i:i + 1].numpy(), scores[i:i + 1].numpy(), k=int((rel[i] > 0).sum()))
           for i in range(50)]
    assert m["NDCG"] == pytest.approx(float(np.mean(ref)), abs=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="expected scores of shape"):
        scores_to_ranks(torch.zeros(3))
    with pytest.raises(ValueError, match="non-zero relevance"):
        ndcg(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="expected truth"):
        ranking_metrics(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
