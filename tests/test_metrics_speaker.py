"""The equal error rate of speaker verification (§41.2)."""
import numpy as np
import pytest
from sklearn.metrics import roc_curve

from mmcourse.metrics import equal_error_rate


def test_eer_extremes_and_a_hand_case():
    assert equal_error_rate([0.9, 0.8, 0.1, 0.2], [True, True, False, False])[0] == 0.0
    assert equal_error_rate([0.1, 0.2, 0.9, 0.8], [True, True, False, False])[0] == 1.0
    # targets 0.9, 0.6; impostors 0.7, 0.2: at t = 0.7 FAR 1/2, FRR 1/2
    eer, threshold = equal_error_rate([0.9, 0.6, 0.7, 0.2], [True, True, False, False])
    assert eer == pytest.approx(0.5) and threshold == pytest.approx(0.7)


def test_eer_matches_the_roc_crossing():
    rng = np.random.default_rng(0)
    for n in (20, 200, 2000):
        same = rng.random(n) < 0.3
        same[:2] = [True, False]
        scores = rng.normal(0, 1, n) + 1.5 * same
        eer, _ = equal_error_rate(scores, same)
        fpr, tpr, _ = roc_curve(same, scores)
        fnr = 1 - tpr
        k = np.nanargmin(np.abs(fnr - fpr))  # the usual approximation: the nearest point
        assert abs(eer - (fpr[k] + fnr[k]) / 2) <= abs(fnr[k] - fpr[k]) / 2 + 1e-12
    uninformative = equal_error_rate(np.zeros(10), [True] * 5 + [False] * 5)[0]
    assert uninformative == pytest.approx(0.5)


def test_eer_rejects_bad_input():
    with pytest.raises(ValueError, match="one score per trial"):
        equal_error_rate([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="at least one target"):
        equal_error_rate([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="finite"):
        equal_error_rate([np.nan, 0.2], [True, False])
