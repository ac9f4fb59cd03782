"""GQA consistency against a transcription of the official evaluation (GQA's ``eval.py``,
``updateConsistency``), plus edge cases and input checks."""
import math
import random

import pytest

from mmcourse.metrics import gqa_consistency


def official_consistency(predictions: dict, questions: dict) -> float:
    """The consistency part of GQA's ``eval.py``, transcribed: for every correctly answered question
    with entailed questions, the mean score of those; reported as the mean over such questions."""
    scores = []
    for qid, question in questions.items():
        correct = predictions[qid] == question["answer"]
        inferred = [eid for eid in question["entailed"] if eid != qid]
        if correct and len(inferred) > 0:
            consistency_scores = [float(predictions[eid] == questions[eid]["answer"])
                                  for eid in inferred]
            scores.append(sum(consistency_scores) / len(consistency_scores))
    return sum(scores) / len(scores) if scores else 0.0


def test_matches_official_on_random_groups():
    rng = random.Random(0)
    vocab = ["yes", "no", "red", "blue", "2"]
    for _ in range(50):
        n = rng.randint(2, 30)
        answers = [rng.choice(vocab) for _ in range(n)]
        predictions = [a if rng.random() < 0.7 else rng.choice(vocab) for a in answers]
        entailed = [rng.sample(range(n), rng.randint(0, min(4, n))) for _ in range(n)]
        questions = {i: {"answer": a, "entailed": e}
                     for i, (a, e) in enumerate(zip(answers, entailed))}
        value, count = gqa_consistency(predictions, answers, entailed)
        expected = official_consistency(dict(enumerate(predictions)), questions)
        if count == 0:
            assert math.isnan(value) and expected == 0.0
        else:
            assert value == pytest.approx(expected, abs=1e-12)


def test_hand_computed_example():
    # q0 -> q1, q2; q1 -> q0; q3 has no entailed question; q4 is wrong, so it does not count
    answers = ["yes", "yes", "no", "red", "blue"]
    predictions = ["yes", "yes", "yes", "red", "red"]
    entailed = [[1, 2], [0], [0, 1], [], [0]]
    value, count = gqa_consistency(predictions, answers, entailed)
    assert count == 2 and value == pytest.approx((0.5 + 1.0) / 2)


def test_self_links_are_ignored_and_exact_match_is_used():
    value, count = gqa_consistency(["yes", "Yes"], ["yes", "yes"], [[0, 1], [1]])
    assert (value, count) == (0.0, 1)  # "Yes" != "yes": GQA does not normalise
    value, count = gqa_consistency(["no"], ["yes"], [[0]])
    assert math.isnan(value) and count == 0


@pytest.mark.parametrize("predictions,answers,entailed", [
    (["yes"], ["yes", "no"], [[], []]),  # lengths differ
    (["yes", "no"], ["yes", "no"], [[1]]),  # one entailed list missing
    (["yes", 1], ["yes", "no"], [[1], [0]]),  # not a str
    (["yes", "no"], ["yes", "no"], [[2], [0]]),  # index out of range
    (["yes", "no"], ["yes", "no"], [1, [0]]),  # not a list
    ("yes", "yes", [[]]),  # not lists
])
def test_bad_input_raises(predictions, answers, entailed):
    with pytest.raises(ValueError):
        gqa_consistency(predictions, answers, entailed)
