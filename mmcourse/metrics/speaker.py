"""Speaker verification: the equal error rate of same-voice / different-voice trials.
Built in §41.2."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def equal_error_rate(scores: Sequence[float], same: Sequence[bool]) -> tuple[float, float]:
    """The equal error rate (EER) of verification trials and its threshold.

    Each trial compares two recordings with a similarity ``score`` (higher: more alike) and is
    a *target* trial when ``same`` (one voice) or an *impostor* trial otherwise. Accepting
    every trial with score >= t gives a false-acceptance rate (impostors accepted) and a
    false-rejection rate (targets rejected); the EER is where the two are equal, found, as
    speaker-verification toolkits do, on the ROC curve (``sklearn.metrics.roc_curve``'s
    thresholds: every distinct score) by linear interpolation between the two points where
    the false-rejection rate crosses the false-acceptance rate. 0 when every target outscores
    every impostor, 0.5 for scores that carry no information.

    Returns:
        ``(eer, threshold)``: the rate in [0, 1] and the score at which it is reached.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"expected one score per trial, got shapes {s.shape} and {y.shape}")
    if not y.any() or y.all():
        raise ValueError("need at least one target (same) and one impostor (different) trial")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    thresholds = np.unique(s)[::-1]  # accept score >= t, strictest first
    far = np.array([(s[~y] >= t).mean() for t in thresholds])
    frr = np.array([(s[y] < t).mean() for t in thresholds])
    far, frr = np.r_[0.0, far], np.r_[1.0, frr]  # above every score: accept nothing
    thresholds = np.r_[thresholds[0] + 1.0, thresholds]
    k = int(np.argmax(frr <= far))  # the first point past the crossing
    if k == 0 or frr[k] == far[k]:
        return float(far[k]), float(thresholds[k])
    # frr - far goes from positive at k - 1 to <= 0 at k: interpolate the zero
    d0, d1 = frr[k - 1] - far[k - 1], frr[k] - far[k]
    w = d0 / (d0 - d1)
    eer = far[k - 1] + w * (far[k] - far[k - 1])
    return float(eer), float(thresholds[k - 1] + w * (thresholds[k] - thresholds[k - 1]))
