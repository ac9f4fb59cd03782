"""CLIP-score filtering, near-duplicates and MMC4-style assignment (mmcourse.data.curation),
§40.7."""
import numpy as np
import pytest
import torch

from mmcourse.data.curation import (assign_images, clip_score, deduplicate, filter_sweep,
                                    near_duplicates)


def test_clip_score_is_the_cosine_of_each_pair():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    expected = torch.nn.functional.cosine_similarity(u, v, dim=1)
    assert torch.allclose(clip_score(3 * u, v), expected, atol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        clip_score(u, v[:3])


def test_filter_sweep_counts():
    scores = torch.tensor([0.9, 0.8, 0.3, 0.2, 0.85])
    good = torch.tensor([True, True, False, True, False])
    rows = filter_sweep(scores, good, [0.0, 0.5, 0.95])
    assert rows[0] == {"threshold": 0.0, "kept": 1.0, "precision": 0.6, "recall": 1.0}
    assert rows[1]["kept"] == 0.6 and abs(rows[1]["precision"] - 2 / 3) < 1e-9
    assert abs(rows[1]["recall"] - 2 / 3) < 1e-9
    assert rows[2]["kept"] == 0.0 and np.isnan(rows[2]["precision"]) and rows[2]["recall"] == 0.0


def test_near_duplicates_and_deduplicate():
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.98, 0.1], [-1.0, 0.0]])
    pairs = near_duplicates(emb, 0.95)
    assert pairs.tolist() == [[0, 1], [0, 3], [1, 3]]
    assert deduplicate(emb, 0.95).tolist() == [True, False, True, False, True]
    assert near_duplicates(emb, 0.9999).shape == (0, 2)
    with pytest.raises(ValueError, match="N, D"):
        near_duplicates(emb[0], 0.5)


def test_bipartite_assignment_beats_greedy_when_images_compete():
    sim = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0]])  # both images prefer sentence 0
    assert assign_images(sim, "greedy").tolist() == [0, 0]
    assert assign_images(torch.tensor(sim), "bipartite").tolist() == [1, 0]
    rng = np.random.default_rng(0)
    for _ in range(20):  # bipartite: a permutation with the best total similarity
        sim = rng.normal(size=(3, 5))
        out = assign_images(sim)
        assert len(set(out.tolist())) == 3
        best = max(sum(sim[i, p[i]] for i in range(3))
                   for p in __import__("itertools").permutations(range(5), 3))
        assert abs(sim[np.arange(3), out].sum() - best) < 1e-9
    with pytest.raises(ValueError, match="M <= S"):
        assign_images(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="unknown method"):
        assign_images(sim, "hungarian")
